/**
 * The client side of the session: every command that needs the login asks the agent (started on
 * demand). The agent keeps the refresh token, the IdP access token and the DPoP key; a command receives
 * only what it needs itself (a tenant token, a proof), and `status` only facts.
 */
import type { EffectiveProfile } from '../config/load.js';
import { requireIdp, requireSetting } from '../config/require.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import { type AgentConnection, ensureAgent } from './agent-client.js';
import type { LoginFacts, ProfileRef, WireTenantToken } from './agent-protocol.js';
import { accessTokenHash } from './dpop.js';
import type { DeviceCodeInfo, LoginUi, Waiting } from './flows.js';
import { checkTenantName, type Role, type TenantToken } from './tenant.js';

export interface ManagerOptions {
  deps: Deps;
  eff: EffectiveProfile;
  ui: LoginUi & { debug(line: string): void };
  /** `--debug`: the agent sends its request lines (never a body or a token) along. */
  debug?: boolean;
}

export function profileRef(eff: EffectiveProfile): ProfileRef {
  const { issuer, clientId } = requireIdp(eff);
  return {
    profile: eff.name,
    issuer,
    client_id: clientId,
    insecure_http: eff.profile.insecure_http,
    storage: eff.profile.storage,
    dpop: eff.profile.dpop,
  };
}

export function requireResource(eff: EffectiveProfile): string {
  return requireSetting(
    eff,
    'mcp_resource',
    "the control plane's MCP resource URI",
    'https://mcp.example/mcp',
  );
}

/** The agent's session for one profile: the connection, and the login's facts (checked logged in). */
export interface AgentSession {
  agent: AgentConnection;
  ref: ProfileRef;
  login: LoginFacts;
}

/** Connects to (or starts) the agent and checks the profile is logged in there. */
export async function openAgentSession({ deps, eff, ui }: ManagerOptions): Promise<AgentSession> {
  const ref = profileRef(eff);
  const agent = await ensureAgent(deps);
  ui.debug(`agent pid ${agent.pid} (${agent.paths.socket})`);
  try {
    const answer = await agent.request<StatusAnswer>('status', { ref }, { signal: deps.signal });
    const login = checked(answer, eff.name);
    return { agent, ref, login };
  } catch (err) {
    agent.close();
    throw err;
  }
}

interface StatusAnswer {
  logged_in: boolean;
  login?: LoginFacts;
  reason?: 'not_logged_in' | 'login_ended';
}

function checked(answer: StatusAnswer, profile: string): LoginFacts {
  if (answer.logged_in && answer.login) return answer.login;
  const p = profile === 'default' ? '' : ` --profile ${profile}`;
  throw notLoggedInError(profile, answer.reason === 'login_ended', p);
}

function notLoggedInError(profile: string, ended: boolean, p: string): CliError {
  return ended
    ? new CliError(
        'auth',
        `your login (profile ${profile}) ended with the mcp-secure agent that held its DPoP key (a reboot, a logout of your session, \`agent stop\`); the refresh token in the keychain is useless without that key`,
        { hint: `run \`mcp-secure login${p}\`` },
      )
    : new CliError('auth', `not logged in (profile ${profile})`, { hint: `run \`mcp-secure login${p}\`` });
}

/** Forwards the agent's login events to the terminal; answers "open a browser" here. */
export function loginHandlers(deps: Deps, ui: LoginUi) {
  let waiting: Waiting | undefined;
  return {
    signal: deps.signal,
    // A login waits for a person: bounded by the login's own timeout in the agent, plus a margin.
    timeoutMs: 24 * 3600_000,
    onEvent(name: string, data: Record<string, unknown>) {
      if (name === 'device_code') void ui.showDeviceCode(data as unknown as DeviceCodeInfo);
      else if (name === 'browser_url') ui.showBrowserUrl(String(data['url']), data['opened'] === true);
      else if (name === 'waiting') {
        waiting?.stop();
        waiting = ui.waiting(String(data['text']));
      } else if (name === 'waiting_stop') {
        waiting?.stop();
        waiting = undefined;
      } else if (name === 'debug') ui.debug(String(data['line']));
    },
    async onAsk(name: string, data: Record<string, unknown>) {
      if (name === 'open_url') return deps.openUrl(String(data['url']));
      return null;
    },
    stop() {
      waiting?.stop();
    },
  };
}

/** A fresh, strong sign-in (max_age=0 and the configured acr_values) for the admin role, kept by the agent for this connection only. */
export async function stepUp(
  session: Pick<AgentSession, 'agent' | 'ref'>,
  { deps, eff, ui }: ManagerOptions,
): Promise<string> {
  const { resolveFlow } = await import('./interactive.js');
  const handlers = loginHandlers(deps, ui);
  try {
    const { elevation } = await session.agent.request<{ elevation: string }>(
      'stepup',
      {
        ref: session.ref,
        flow: await resolveFlow(eff.profile.login_flow, deps),
        timeout_ms: eff.profile.login_timeout * 1000,
        admin_acr: eff.profile.admin_acr,
        debug: true,
      },
      handlers,
    );
    return elevation;
  } finally {
    handlers.stop();
  }
}

export interface TenantRequest {
  tenant: string;
  role: Role;
  /** For admin: the elevation of an earlier step-up in this same tenant session. */
  elevation?: string;
}

/** A fresh, checked tenant token from the agent (for admin, from a step-up: the one given, or a new one). */
export async function obtainTenantToken(
  session: Pick<AgentSession, 'agent' | 'ref'>,
  request: TenantRequest,
  manager: ManagerOptions,
): Promise<TenantToken> {
  const tenant = checkTenantName(request.tenant);
  const resource = requireResource(manager.eff);
  const elevation =
    request.role === 'admin' ? (request.elevation ?? (await stepUp(session, manager))) : undefined;
  const endpoint = manager.eff.profile.exchange_endpoint;
  return session.agent.request<WireTenantToken>(
    'exchange',
    {
      ref: session.ref,
      tenant,
      resource,
      role: request.role,
      ...(elevation ? { elevation } : {}),
      ...(endpoint ? { exchange_endpoint: endpoint } : {}),
      debug: manager.debug === true,
    },
    {
      signal: manager.deps.signal,
      onEvent: (name, data) => {
        if (name === 'debug') manager.ui.debug(String(data['line']));
      },
    },
  );
}

/**
 * A DPoP proof from the agent for one request with a tenant token. `ath` is computed here (this
 * process holds the tenant token anyway), so the agent gets nothing it does not need.
 */
export function proofSigner(session: AgentSession) {
  let last: { token: string; ath: string } | undefined;
  return async (method: string, url: string, token: string): Promise<string> => {
    if (last?.token !== token) last = { token, ath: accessTokenHash(token) };
    const { proof } = await session.agent.request<{ proof: string }>(
      'proof',
      { profile: session.ref.profile, htm: method, htu: url, ath: last.ath },
      { timeoutMs: 10_000 },
    );
    return proof;
  };
}
