/**
 * Tenant access: from the effective profile to an open login (the stored login, its access token kept
 * valid under a lock) and from there to checked tenant tokens, with the admin step-up. Used by `token`
 * and by the tunnel (`connect`, `audit tail`). Glossary: docs/architecture.md.
 */
import { join } from 'node:path';
import type * as Client from 'openid-client';
import type { EffectiveProfile } from '../config/load.js';
import { profileArg, requireIdp, requireSetting } from '../config/require.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import { openStore } from '../secrets/select.js';
import { interactiveLogin } from './interactive.js';
import type { LoginUi } from './login-ui.js';
import { checkCredentialUrl, connectIdp, guardedFetch, type Idp } from './oidc.js';
import { accountFor, loadLogin } from './stored-login.js';
import {
  checkTenantName,
  exchangeForTenant,
  OpenLogin,
  type Role,
  type TenantToken,
  type TokenVerifier,
} from './tenant.js';

export interface TenantAccessOptions {
  deps: Deps;
  eff: EffectiveProfile;
  ui: LoginUi;
}

export async function openLogin({ deps, eff, ui }: TenantAccessOptions): Promise<OpenLogin> {
  const { issuer, clientId } = requireIdp(eff);
  // The keychain and the IdP's discovery are independent: ask both at once.
  const idpPromise = connectIdp({
    issuer,
    clientId,
    insecureHttp: eff.profile.insecure_http,
    fetch: deps.fetch,
    debug: (line) => ui.debug(line),
  });
  idpPromise.catch(() => undefined);
  const opened = await openStore(eff.profile.storage, deps, accountFor(eff.name), { purpose: 'read' });
  const login = await loadLogin(opened.store, eff.name);
  const p = profileArg(eff.name);
  if (!login) {
    throw new CliError('auth', `not logged in (profile ${eff.name})`, {
      hint:
        opened.store.kind === 'memory'
          ? 'no OS keychain is usable here, so logins do not outlive their command; unlock or install a keychain'
          : `run \`mcp-secure login${p}\``,
    });
  }
  const idp = await idpPromise;
  if (login.issuer !== idp.issuer || login.client_id !== clientId) {
    throw new CliError(
      'auth',
      `the stored login is for ${login.issuer}, but profile ${eff.name} names ${idp.issuer}`,
      {
        hint: `run \`mcp-secure login${p}\``,
      },
    );
  }
  return new OpenLogin({
    idp,
    store: opened.store,
    profile: eff.name,
    login,
    lockDir: join(deps.configDir, 'locks'),
    now: deps.now,
    sleep: deps.sleep,
    signal: deps.signal,
    debug: (line) => ui.debug(line),
    dpop: eff.profile.dpop,
  });
}

export function requireResource(eff: EffectiveProfile): string {
  return requireSetting(
    eff,
    'mcp_resource',
    "the control plane's MCP resource URI",
    'https://mcp.example/mcp',
  );
}

/** The IdP configuration exchanges go to: the token endpoint, or the profile's exchange_endpoint. */
function exchangeConfig(idp: Idp, endpoint: string | undefined, insecureHttp: boolean) {
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

export interface TenantRequest {
  tenant: string;
  role: Role;
  /** For admin: the token of an earlier step-up in this same tenant session. */
  elevatedToken?: string;
}

/**
 * A fresh, strong sign-in (max_age=0 and the configured acr_values) for the admin role. Its token is
 * kept by the caller for one tenant session only, never stored, so the elevation cannot carry over.
 */
export async function stepUp(session: OpenLogin, { deps, eff, ui }: TenantAccessOptions): Promise<string> {
  const { tokens } = await interactiveLogin({
    idp: session.idp,
    deps,
    ui,
    flow: eff.profile.login_flow,
    scope: 'openid',
    timeoutMs: eff.profile.login_timeout * 1000,
    dpop: await session.dpop(),
    extraParams: { max_age: '0', acr_values: eff.profile.admin_acr },
    ...(eff.profile.callback_port ? { callbackPorts: eff.profile.callback_port } : {}),
  });
  return tokens.access_token;
}

/** A fresh, checked tenant token (for admin, from a step-up: the one given, or a new one). */
export async function obtainTenantToken(
  session: OpenLogin,
  request: TenantRequest,
  manager: TenantAccessOptions,
): Promise<TenantToken> {
  const tenant = checkTenantName(request.tenant);
  const resource = requireResource(manager.eff);
  const subjectToken =
    request.role === 'admin'
      ? (request.elevatedToken ?? (await stepUp(session, manager)))
      : await session.accessToken();
  const verifier = await tenantTokenVerifier(session.idp, manager.eff);
  return exchangeForTenant(session.idp, {
    tenant,
    resource,
    role: request.role,
    subjectToken,
    user: session.login.user,
    now: manager.deps.now,
    dpop: await session.dpop(),
    config: exchangeConfig(
      session.idp,
      manager.eff.profile.exchange_endpoint,
      manager.eff.profile.insecure_http,
    ),
    customEndpoint: manager.eff.profile.exchange_endpoint !== undefined,
    verifier,
  });
}

/** One verifier per IdP connection and issuer, so a long `connect` reuses the cached JWKS. */
const verifiers = new WeakMap<Idp, Map<string, Promise<TokenVerifier>>>();

/**
 * Who must have signed the tenant token: the IdP (its discovery's jwks_uri), or `exchange_issuer` from
 * the user's config when the exchange endpoint belongs to someone else (its own discovery names its JWKS).
 */
export function tenantTokenVerifier(idp: Idp, eff: EffectiveProfile): Promise<TokenVerifier> {
  const issuer = eff.profile.exchange_issuer ?? idp.issuer;
  let byIssuer = verifiers.get(idp);
  if (!byIssuer) {
    byIssuer = new Map();
    verifiers.set(idp, byIssuer);
  }
  let verifier = byIssuer.get(issuer);
  if (!verifier) {
    verifier = buildVerifier(idp, issuer, eff.profile.insecure_http);
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
