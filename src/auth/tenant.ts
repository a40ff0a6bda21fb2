/**
 * RFC 8693 token exchange for a short-lived token that names exactly one tenant (done by the agent, which
 * holds the IdP access token). The answer is checked before use; anything off is refused.
 */
import type * as Client from 'openid-client';
import { TENANT_NAME } from '../config/schema.js';
import { CliError, sanitize } from '../errors.js';
import { type Idp, mapIdpError, oauthError } from './oidc.js';
import type { UserInfo } from './session.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** A tenant token that lives longer than this is refused: these are meant to live minutes, not days. */
export const MAX_TENANT_TOKEN_LIFETIME_S = 3600;

export type Role = 'member' | 'admin';

export interface TenantToken {
  token: string;
  tokenType: 'Bearer' | 'DPoP';
  tenant: string;
  roles: string[];
  audience: string;
  scope: string | undefined;
  /** Epoch ms. */
  issuedAt: number;
  /** Epoch ms. */
  expiresAt: number;
  /** Thumbprint of the DPoP key the token is bound to. */
  jkt: string | undefined;
}

export function checkTenantName(tenant: string): string {
  if (!TENANT_NAME.test(tenant)) {
    throw new CliError('usage', `invalid tenant name "${sanitize(tenant, 64)}"`, {
      hint: 'tenant names use lower-case letters, digits and dashes (at most 63)',
    });
  }
  return tenant;
}

export function describeUser(user: UserInfo): string {
  return user.preferred_username ?? user.email ?? user.name ?? user.sub;
}

function decodeJwtPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return payload && typeof payload === 'object' && !Array.isArray(payload)
      ? (payload as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export interface ExchangeRequest {
  tenant: string;
  resource: string;
  role: Role;
  subjectToken: string;
  user: UserInfo;
  now(): number;
  dpop: Client.DPoPOptions;
  /** The IdP configuration to send the exchange to (a custom exchange endpoint gets its own). */
  config?: Client.Configuration;
}

/**
 * RFC 8693 exchange for a tenant token, and the checks that make it safe to use: exactly the tenant and
 * audience asked for, an expiry that is present and short. Anything else is a trust failure (exit 5).
 */
export async function exchangeForTenant(idp: Idp, req: ExchangeRequest): Promise<TenantToken> {
  const params: Record<string, string> = {
    subject_token: req.subjectToken,
    subject_token_type: ACCESS_TOKEN_TYPE,
    requested_token_type: ACCESS_TOKEN_TYPE,
    resource: req.resource,
    tenant: req.tenant,
  };
  if (req.role !== 'member') params['role'] = req.role;
  let answer: Client.TokenEndpointResponse;
  try {
    answer = await idp.client.genericGrantRequest(
      req.config ?? idp.config,
      TOKEN_EXCHANGE_GRANT,
      params,
      req.dpop,
    );
  } catch (err) {
    const oauth = oauthError(err);
    const who = describeUser(req.user);
    const detail = oauth?.description ? ` (${oauth.description})` : '';
    switch (oauth?.error) {
      case 'access_denied':
      case 'invalid_target':
      case 'unauthorized_client':
        throw new CliError('auth', `${who} may not use tenant ${req.tenant}${detail}`, {
          hint: `check the tenant name, or ask your admin to add ${who} to ${req.tenant}`,
          cause: err,
        });
      case 'insufficient_user_authentication':
        throw new CliError(
          'auth',
          `the ${req.role} role on ${req.tenant} needs a fresh, stronger sign-in${detail}`,
          {
            hint: 'run again with `--role admin`, which asks you to sign in with your security key',
            cause: err,
          },
        );
      case 'invalid_grant':
        throw new CliError('auth', `the IdP no longer accepts your login for token exchange${detail}`, {
          hint: 'run `mcp-secure login`',
          cause: err,
        });
      case 'unsupported_grant_type':
        throw new CliError('error', `the IdP at ${idp.issuer} does not support token exchange (RFC 8693)`, {
          hint: "set exchange_endpoint in your profile to the control plane's exchange endpoint",
          cause: err,
        });
      default:
        throw mapIdpError(err, idp.issuer, 'token exchange', 'auth');
    }
  }
  return checkTenantToken(answer, req);
}

function refuse(message: string): CliError {
  return new CliError('trust', `refusing the tenant token: ${message}`, {
    hint: 'this is a fault or an attack at the control plane; report it to its operators',
  });
}

export function checkTenantToken(answer: Client.TokenEndpointResponse, req: ExchangeRequest): TenantToken {
  const claims = decodeJwtPayload(answer.access_token);
  if (!claims) throw refuse('it is not a JWT, so its tenant and expiry cannot be checked');
  if (typeof claims['tenant'] !== 'string' || claims['tenant'] !== req.tenant) {
    throw refuse(`it names tenant "${sanitize(claims['tenant'], 64)}", not ${req.tenant}`);
  }
  const aud = claims['aud'];
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (!audiences.includes(req.resource)) {
    throw refuse(`its audience is ${sanitize(JSON.stringify(aud ?? null), 100)}, not ${req.resource}`);
  }
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw refuse('it has no expiry');
  const now = req.now();
  const lifetime = exp - Math.floor(now / 1000);
  if (lifetime > MAX_TENANT_TOKEN_LIFETIME_S) {
    throw refuse(
      `it lives ${Math.round(lifetime / 60)} min; tenant tokens must live at most ${MAX_TENANT_TOKEN_LIFETIME_S / 60} min`,
    );
  }
  if (lifetime <= 0) throw refuse('it has already expired (check your clock)');
  const roles = Array.isArray(claims['roles'])
    ? claims['roles'].filter((r): r is string => typeof r === 'string')
    : [];
  if (req.role === 'admin' && !roles.includes('admin'))
    throw refuse('the admin role was asked for but not granted');
  const cnf = claims['cnf'] as { jkt?: unknown } | undefined;
  const iat = typeof claims['iat'] === 'number' ? claims['iat'] * 1000 : now;
  return {
    token: answer.access_token,
    tokenType: String(answer.token_type).toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer',
    tenant: req.tenant,
    roles,
    audience: req.resource,
    scope: typeof claims['scope'] === 'string' ? claims['scope'] : answer.scope,
    issuedAt: Math.min(iat, now),
    expiresAt: exp * 1000,
    jkt: typeof cnf?.jkt === 'string' ? cnf.jkt : undefined,
  };
}
