/** One sign-in, by whichever flow fits here: used by `login` and by the admin step-up. */
import type * as Client from 'openid-client';
import type { LoginFlow } from '../config/schema.js';
import type { Deps } from '../io.js';
import type { TokenResponse } from './device.js';
import type { LoginUi } from './flows.js';
import type { Idp } from './oidc.js';

export interface InteractiveLoginOptions {
  idp: Idp;
  deps: Deps;
  ui: LoginUi;
  flow: LoginFlow;
  scope: string;
  timeoutMs: number;
  dpop?: Client.DPoPOptions;
  extraParams?: Record<string, string>;
  /** Fixed loopback ports for the browser flow's redirect (the profile's callback_port). */
  callbackPorts?: number[];
}

export async function resolveFlow(flow: LoginFlow, deps: Deps): Promise<'device' | 'browser'> {
  if (flow !== 'auto') return flow;
  const { canOpenBrowser } = await import('../cli/browser.js');
  return canOpenBrowser(deps.env, deps.platform) ? 'browser' : 'device';
}

export async function interactiveLogin(
  o: InteractiveLoginOptions,
): Promise<{ tokens: TokenResponse; flow: 'device' | 'browser' }> {
  const flow = await resolveFlow(o.flow, o.deps);
  const common = {
    idp: o.idp,
    scope: o.scope,
    ui: o.ui,
    sleep: o.deps.sleep,
    signal: o.deps.signal,
    ...(o.dpop ? { dpop: o.dpop } : {}),
    ...(o.extraParams ? { extraParams: o.extraParams } : {}),
  };
  const tokens =
    flow === 'device'
      ? await (await import('./device.js')).deviceLogin({ ...common, now: o.deps.now })
      : await (await import('./browser.js')).browserLogin({
          ...common,
          openUrl: o.deps.openUrl,
          timeoutMs: o.timeoutMs,
          ...(o.callbackPorts ? { ports: o.callbackPorts } : {}),
        });
  return { tokens, flow };
}
