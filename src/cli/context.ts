/** Shared start of every command: the effective profile, and the Ui. */
import { type EffectiveProfile, loadEffectiveProfile } from '../config/load.js';
import { PROFILE_KEYS, type Profile } from '../config/schema.js';
import type { Deps } from '../io.js';
import type { GlobalOptions } from './ui.js';

export interface ProfileFlags {
  values: Partial<Profile>;
  names: Partial<Record<keyof Profile, string>>;
}

/** Picks the profile keys a command's flags set. */
export function profileFlags(options: Record<string, unknown>): ProfileFlags {
  const values: Partial<Profile> = {};
  const names: Partial<Record<keyof Profile, string>> = {};
  const str = (k: string) => (typeof options[k] === 'string' ? (options[k] as string) : undefined);
  const issuer = str('issuer');
  if (issuer !== undefined) {
    values.issuer = issuer;
    names.issuer = '--issuer';
  }
  const clientId = str('clientId');
  if (clientId !== undefined) {
    values.client_id = clientId;
    names.client_id = '--client-id';
  }
  const storage = str('storage');
  if (storage === 'auto' || storage === 'keychain' || storage === 'memory') {
    values.storage = storage;
    names.storage = '--storage';
  }
  if (options['insecureHttp'] === true) {
    values.insecure_http = true;
    names.insecure_http = '--insecure-http';
  }
  const scope = str('scope');
  if (scope !== undefined) {
    values.scopes = scope.split(/[\s,]+/).filter(Boolean);
    names.scopes = '--scope';
  }
  // commander gives `--no-dpop` a default of true: only an explicit --no-dpop is a flag value.
  if (options['dpop'] === false) {
    values.dpop = false;
    names.dpop = '--no-dpop';
  }
  const callbackPort = str('callbackPort');
  if (callbackPort !== undefined) {
    values.callback_port = PROFILE_KEYS.callback_port.parse(callbackPort) as number[];
    names.callback_port = '--callback-port';
  }
  const timeout = str('timeout');
  if (timeout !== undefined) {
    values.login_timeout = Number(timeout);
    names.login_timeout = '--timeout';
  }
  return { values, names };
}

export async function loadProfile(
  deps: Deps,
  globals: GlobalOptions,
  flags: ProfileFlags = { values: {}, names: {} },
): Promise<EffectiveProfile> {
  return loadEffectiveProfile({
    configDir: deps.configDir,
    cwd: deps.cwd,
    env: deps.env,
    profileFlag: globals.profile,
    flags: flags.values,
    flagNames: flags.names,
  });
}

export { requireIdp } from '../config/require.js';
