/**
 * Tenant access. The client side: every command that needs the login asks the agent (started on demand),
 * which keeps the refresh token, the IdP access token and the DPoP key; a command receives only what it
 * needs itself (a tenant token, a proof), and `status` only facts. The agent side: where exchanges go and
 * who must have signed a tenant token. Glossary: docs/architecture.md.
 */

import type * as Client from 'openid-client';
import type { EffectiveProfile } from '../config/load.js';
import { requireIdp, requireSetting } from '../config/require.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import { type AgentConnection, ensureAgent } from './agent-client.js';
import type { LoginFacts, ProfileRef, WireTenantToken } from './agent-protocol.js';
import { accessTokenHash, proofTarget } from './dpop.js';
import type { DeviceCodeInfo, LoginUi, Waiting } from './login-ui.js';
import { checkCredentialUrl, guardedFetch, type Idp } from './oidc.js';
import { ProofPool } from './proof-pool.js';
import { checkTenantName, type Role, type TenantToken, type TokenVerifier } from './tenant.js';

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
    ...(eff.profile.callback_port ? { callback_ports: eff.profile.callback_port } : {}),
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
      else if (name === 'browser_url') {
        const r = data['redirect'] as { uri?: unknown; fixed?: unknown } | undefined;
        const redirect = r && typeof r.uri === 'string' ? { uri: r.uri, fixed: r.fixed === true } : undefined;
        ui.showBrowserUrl(String(data['url']), data['opened'] === true, redirect);
      } else if (name === 'waiting') {
        waiting?.stop();
        waiting = ui.waiting(String(data['text']));
      } else if (name === 'waiting_stop') {
        waiting?.stop();
        waiting = undefined;
      } else if (name === 'debug') ui.debug(String(data['line']));
      else if (name === 'warn') ui.warn(String(data['line']));
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
      ...(manager.eff.profile.exchange_issuer
        ? { exchange_issuer: manager.eff.profile.exchange_issuer }
        : {}),
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
 * process holds the tenant token anyway), so the agent gets nothing it does not need. Proofs for a
 * request shape in repeated use are signed a few at a time ahead of need (proof-pool.ts).
 */
export function proofSigner(session: AgentSession, now: () => number = Date.now) {
  let last: { token: string; ath: string } | undefined;
  const pool = new ProofPool({
    now,
    sign: async (htm, htu, ath, count) => {
      const answer = await session.agent.request<{ proof: string; proofs?: unknown }>(
        'proof',
        { profile: session.ref.profile, htm, htu, ath, count },
        { timeoutMs: 10_000 },
      );
      // An agent without batches answers one proof.
      const proofs = Array.isArray(answer.proofs)
        ? answer.proofs.filter((p): p is string => typeof p === 'string')
        : [];
      return proofs.length > 0 ? proofs.slice(0, count) : [answer.proof];
    },
  });
  const sign = async (method: string, url: string, token: string): Promise<string> => {
    if (last?.token !== token) last = { token, ath: accessTokenHash(token) };
    return pool.take(method.toUpperCase(), proofTarget(url), last.ath);
  };
  return Object.assign(sign, { pool });
}

// --- The agent side ---

/** The IdP configuration exchanges go to: the token endpoint, or the profile's exchange_endpoint. */
export function exchangeConfig(idp: Idp, endpoint: string | undefined, insecureHttp: boolean) {
  if (!endpoint) return idp.config;
  // The same rule as for the IdP: https, or loopback http with the named opt-in; checked before any token
  // is sent (guardedFetch checks it again on the request itself).
  const url = checkCredentialUrl(endpoint, insecureHttp, 'exchange_endpoint');
  const { client } = idp;
  // serverMetadata() carries helper methods; the constructor wants the plain JSON document.
  const metadata = JSON.parse(JSON.stringify(idp.config.serverMetadata())) as Client.ServerMetadata;
  const config = new client.Configuration(
    { ...metadata, token_endpoint: endpoint },
    idp.config.clientMetadata().client_id,
    undefined,
    client.None(),
  );
  if (url.protocol === 'http:') client.allowInsecureRequests(config);
  const customFetch = idp.config[client.customFetch];
  if (customFetch) config[client.customFetch] = customFetch;
  return config;
}

/** One verifier per IdP connection and issuer, so a long `connect` reuses the cached JWKS. */
const verifiers = new WeakMap<Idp, Map<string, Promise<TokenVerifier>>>();

/**
 * Who must have signed the tenant token: the IdP (its discovery's jwks_uri), or `exchange_issuer` from
 * the user's config when the exchange endpoint belongs to someone else (its own discovery names its JWKS).
 */
export function tenantTokenVerifier(
  idp: Idp,
  exchangeIssuer: string | undefined,
  insecureHttp: boolean,
): Promise<TokenVerifier> {
  const issuer = exchangeIssuer ?? idp.issuer;
  let byIssuer = verifiers.get(idp);
  if (!byIssuer) {
    byIssuer = new Map();
    verifiers.set(idp, byIssuer);
  }
  let verifier = byIssuer.get(issuer);
  if (!verifier) {
    verifier = buildVerifier(idp, issuer, insecureHttp);
    verifier.catch(() => byIssuer?.delete(issuer));
    byIssuer.set(issuer, verifier);
  }
  return verifier;
}

async function buildVerifier(idp: Idp, issuer: string, insecureHttp: boolean): Promise<TokenVerifier> {
  const { client } = idp;
  const fetcher =
    idp.config[client.customFetch] ?? guardedFetch(globalThis.fetch, { insecureHttp, debug: undefined });
  let jwksUri: unknown;
  if (issuer === idp.issuer) {
    jwksUri = idp.config.serverMetadata().jwks_uri;
  } else {
    const base = checkCredentialUrl(issuer, insecureHttp, 'exchange_issuer').href.replace(/\/$/, '');
    const where = `${base}/.well-known/openid-configuration`;
    let doc: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const res = await fetcher(where, {
        method: 'GET',
        headers: { accept: 'application/json' },
        redirect: 'manual',
      } as never);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = (await res.json()) as typeof doc;
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError('error', `cannot read the discovery document of exchange_issuer ${issuer}`, {
        hint: 'check exchange_issuer in your config (`mcp-secure config`): it must serve /.well-known/openid-configuration',
        cause: err,
      });
    }
    if (doc.issuer !== issuer && doc.issuer !== base) {
      throw new CliError('trust', `the discovery document of ${issuer} names another issuer; refusing it`, {
        hint: 'set exchange_issuer exactly as that issuer names itself',
      });
    }
    jwksUri = doc.jwks_uri;
  }
  if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri)) {
    throw new CliError('error', `${issuer} names no JWKS, so tenant tokens cannot be checked`, {
      hint: 'the tenant token issuer must publish jwks_uri in its discovery document; tell its operators',
    });
  }
  const jose = await import('jose');
  const keys = jose.createRemoteJWKSet(new URL(jwksUri), {
    timeoutDuration: 15_000,
    // A token signed with a kid we have not seen makes jose fetch the JWKS again, but by default not within
    // 30 s of the last fetch: a key rotated right after `connect` started would refuse the next renewal.
    // Exchanges are minutes apart, so a 1 s cooldown only stops a burst.
    cooldownDuration: 1_000,
    [jose.customFetch]: fetcher as never,
  });
  return { issuer, keys };
}
