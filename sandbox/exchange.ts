// RFC 8693 token exchange for the sandbox IdP: an access token this IdP issued to the CLI becomes a short-
// lived JWT access token (RFC 9068) for the MCP resource that names exactly one tenant. Registered with
// oidc-provider's registerGrantType, so it runs at the normal token endpoint after oidc-provider's own
// client authentication, parameter parsing and duplicate checks.

import type { KeyObject } from 'node:crypto';
import { randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { SignJWT } from 'jose';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC, TokenEndpointGrantContext, UnknownObject } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { DPOP_MAX_SKEW_S, DpopProofError, type VerifiedProof, verifyDpopProof } from './dpop-proof.js';
import { userBySub } from './users.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const TENANT_NAME = /^[a-z0-9-]{1,63}$/;

export type TenantRole = 'member' | 'admin';

/** Deliberately wrong answers, for testing that a client refuses them. */
export type ExchangeFault =
  | 'wrong-tenant'
  | 'no-exp'
  | 'long-lived'
  | 'wrong-audience'
  | 'not-jwt'
  /** Unsigned: `alg: none` and an empty signature, the claims otherwise right. */
  | 'alg-none'
  /** Signed with a key the IdP's JWKS does not list (a spoofed exchange endpoint's own key). */
  | 'foreign-key'
  /** Right key, but `iss` names another issuer. */
  | 'wrong-issuer'
  /** The MCP resource and another audience, so the token is good elsewhere too. */
  | 'extra-audience'
  /** The tenant asked for, and a `tenants` claim naming more. */
  | 'tenants-claim'
  /** Over mTLS: bound to another certificate's thumbprint than the one presented (a TLS-terminating proxy). */
  | 'wrong-cert-binding';
export const EXCHANGE_FAULTS: readonly ExchangeFault[] = Object.freeze([
  'wrong-tenant',
  'no-exp',
  'long-lived',
  'wrong-audience',
  'not-jwt',
  'alg-none',
  'foreign-key',
  'wrong-issuer',
  'extra-audience',
  'tenants-claim',
  'wrong-cert-binding',
]);

export interface ExchangeSettings {
  mcpResource: string;
  adminAcr: string;
  stepUpMaxAge: number;
  tenantTokenTtl: number;
  /** The clock the step-up age is measured with (IdpOptions.now). */
  now: () => number;
  /** The key tenant tokens are signed with now (the IdP may rotate it). */
  signer: () => { key: KeyObject; alg: string; kid: string };
  fault: () => ExchangeFault | undefined;
  /**
   * RFC 8705 §3: the token endpoint's mTLS alias. `certificate` gives the client certificate of a request
   * that came over it (PEM); the token is then bound to it (cnf.x5t#S256). `tokenEndpoint` is the URL a
   * DPoP proof sent there names (htu, RFC 9449 §4.3).
   */
  mtls?: { certificate(ctx: KoaContextWithOIDC): string | undefined; tokenEndpoint: string };
}

interface ExchangeParams {
  subject_token?: string;
  subject_token_type?: string;
  requested_token_type?: string;
  resource?: string;
  tenant?: string;
  role?: string;
  actor_token?: string;
  actor_token_type?: string;
}

const PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'resource',
  'tenant',
  'role',
  'actor_token',
  'actor_token_type',
];

const SCOPE_MEMBER = 'mcp:tools';
const SCOPE_ADMIN = 'mcp:admin';
const LONG_LIVED_S = 24 * 60 * 60;
const OTHER_TENANTS = ['acme', 'globex', 'initech'];
const OTHER_AUDIENCE = 'https://other.sandbox.internal/mcp';

export const INSUFFICIENT_USER_AUTHENTICATION = 'insufficient_user_authentication';

export function registerTokenExchange(provider: Provider, settings: ExchangeSettings): void {
  // No duplicates allowed (oidc-provider rejects a repeated parameter with invalid_request).
  provider.registerGrantType<ExchangeParams>(
    TOKEN_EXCHANGE_GRANT,
    (ctx) => exchange(provider, settings, ctx),
    PARAMETERS,
  );
}

/**
 * What the access token being issued records about the authentication behind it, for extraTokenClaims.
 * oidc-provider's AccessToken model has no acr/amr/authTime (lib/models/access_token.js IN_PAYLOAD); the
 * code, device code and refresh token it is minted from do (lib/helpers/grant_common.js issueTokens,
 * lib/actions/grants/refresh_token.js), and they are the context's entities at that moment.
 */
export function authenticationClaims(ctx: KoaContextWithOIDC | undefined): UnknownObject | undefined {
  const entities = ctx?.oidc?.entities;
  const source = entities?.DeviceCode ?? entities?.AuthorizationCode ?? entities?.RefreshToken;
  if (!source) return undefined;
  const claims: UnknownObject = {};
  if (typeof source.acr === 'string') claims['acr'] = source.acr;
  if (Array.isArray(source.amr)) claims['amr'] = [...source.amr];
  if (typeof source.authTime === 'number') claims['auth_time'] = source.authTime;
  return claims;
}

function fail(error: string, description: string): errors.CustomOIDCProviderError {
  return new errors.CustomOIDCProviderError(error, description);
}

async function exchange(
  provider: Provider,
  settings: ExchangeSettings,
  ctx: TokenEndpointGrantContext<ExchangeParams>,
): Promise<void> {
  const { params, client } = ctx.oidc;

  // 1. The request itself.
  const subjectToken = params.subject_token;
  if (!subjectToken) throw fail('invalid_request', "missing required parameter 'subject_token'");
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw fail('invalid_request', `subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw fail('invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
    throw fail('invalid_request', 'delegation (actor_token) is not supported');
  }
  const tenant = params.tenant;
  if (tenant === undefined || !TENANT_NAME.test(tenant)) {
    throw fail('invalid_request', 'tenant must be 1 to 63 lower-case letters, digits or dashes');
  }
  const role = params.role ?? 'member';
  if (role !== 'member' && role !== 'admin') {
    throw fail('invalid_request', 'role must be "member" or "admin"');
  }
  if (params.resource !== settings.mcpResource) {
    throw fail('invalid_target', `resource must be ${settings.mcpResource}`);
  }

  // 2. The DPoP proof, when there is one: it binds the new token (RFC 9449 §5). Over the mTLS alias the
  // client certificate binds it too (RFC 8705 §3); both go into `cnf`, and a resource checks both.
  const certificate = settings.mtls?.certificate(ctx);
  const proof = await checkProof(provider, ctx, certificate ? settings.mtls?.tokenEndpoint : undefined);

  // 3. The subject token: one of ours, live, issued to this client, and held by its key if bound.
  const subject = await provider.AccessToken.find(subjectToken);
  if (!subject) throw fail('invalid_grant', 'subject_token is invalid, expired or revoked');
  if (subject.clientId !== client.clientId) {
    throw fail('invalid_grant', 'subject_token was not issued to this client');
  }
  const grant = await provider.Grant.find(subject.grantId);
  if (!grant || grant.clientId !== client.clientId || grant.accountId !== subject.accountId) {
    throw fail('invalid_grant', 'the grant behind subject_token is gone');
  }
  if (subject.jkt !== undefined) {
    // A stolen bound token is useless without its key (RFC 9449 §1).
    if (!proof)
      throw fail('invalid_grant', 'subject_token is DPoP-bound: send a DPoP proof made with its key');
    if (proof.jkt !== subject.jkt)
      throw fail('invalid_grant', "the DPoP proof's key is not subject_token's key");
  }
  const user = userBySub(subject.accountId);
  if (!user) throw fail('invalid_grant', 'subject_token names an unknown account');

  // 4. Policy: membership, then the role.
  if (!user.tenants.includes(tenant)) {
    // The same answer for an unknown tenant, so tenant names cannot be probed.
    throw new errors.AccessDenied(`user ${user.username} is not a member of tenant ${tenant}`);
  }
  const extra = subject.extra ?? {};
  const authTime = typeof extra['auth_time'] === 'number' ? extra['auth_time'] : undefined;
  const acr = typeof extra['acr'] === 'string' ? extra['acr'] : undefined;
  const now = Math.floor(Date.now() / 1000);
  if (role === 'admin') {
    const age = Math.floor(settings.now() / 1000) - (authTime ?? 0);
    const fresh = authTime !== undefined && age <= settings.stepUpMaxAge;
    if (acr !== settings.adminAcr || !fresh) {
      // RFC 9470 §3; the token endpoint's error middleware adds acr_values and max_age (idp.ts).
      throw fail(
        INSUFFICIENT_USER_AUTHENTICATION,
        `the admin role needs a sign-in with acr ${settings.adminAcr} within the last ${settings.stepUpMaxAge} s; ` +
          `sign in again with acr_values=${settings.adminAcr} and max_age=0`,
      );
    }
  }

  // 5. The answer.
  const fault = settings.fault();
  const roles: TenantRole[] = role === 'admin' ? ['member', 'admin'] : ['member'];
  const scope = role === 'admin' ? `${SCOPE_MEMBER} ${SCOPE_ADMIN}` : SCOPE_MEMBER;
  let lifetime: number | undefined = settings.tenantTokenTtl;
  if (fault === 'no-exp') lifetime = undefined;
  if (fault === 'long-lived') lifetime = LONG_LIVED_S;

  const claims: UnknownObject = {
    client_id: client.clientId,
    tenant: fault === 'wrong-tenant' ? (OTHER_TENANTS.find((t) => t !== tenant) ?? 'other') : tenant,
    roles,
    scope,
    ...(authTime !== undefined ? { auth_time: authTime } : {}),
    ...(acr !== undefined ? { acr } : {}),
    ...(proof || certificate
      ? {
          cnf: {
            ...(proof ? { jkt: proof.jkt } : {}),
            ...(certificate
              ? {
                  'x5t#S256':
                    fault === 'wrong-cert-binding'
                      ? randomBytes(32).toString('base64url')
                      : // RFC 8705 §3.1: base64url(SHA-256(DER certificate)).
                        Buffer.from(
                          new X509Certificate(certificate).fingerprint256.replace(/:/g, ''),
                          'hex',
                        ).toString('base64url'),
                }
              : {}),
          },
        }
      : {}),
    ...(fault === 'tenants-claim' ? { tenants: [tenant, ...OTHER_TENANTS.filter((t) => t !== tenant)] } : {}),
  };
  const signer = fault === 'foreign-key' ? await foreignSigner() : settings.signer();
  const audience =
    fault === 'wrong-audience'
      ? OTHER_AUDIENCE
      : fault === 'extra-audience'
        ? [settings.mcpResource, OTHER_AUDIENCE]
        : settings.mcpResource;
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: signer.alg, typ: 'at+jwt', kid: signer.kid })
    .setIssuer(fault === 'wrong-issuer' ? 'https://other-issuer.example' : provider.issuer)
    .setSubject(user.sub)
    .setAudience(audience)
    .setIssuedAt(now)
    .setJti(randomUUID());
  if (lifetime !== undefined) jwt = jwt.setExpirationTime(now + lifetime);
  let accessToken = fault === 'not-jwt' ? randomBytes(32).toString('base64url') : await jwt.sign(signer.key);
  if (fault === 'alg-none') {
    const [, payload] = accessToken.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url');
    accessToken = `${header}.${payload}.`;
  }

  ctx.body = {
    access_token: accessToken,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: proof ? 'DPoP' : 'Bearer',
    ...(lifetime !== undefined ? { expires_in: lifetime } : {}),
    scope,
  };
}

/** A key of nobody the IdP knows, with the IdP's current kid: what a spoofed exchange endpoint would sign with. */
async function foreignSigner(): Promise<{ key: KeyObject; alg: string; kid: string }> {
  const { generateKeyPairSync } = await import('node:crypto');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: privateKey, alg: 'ES256', kid: 'foreign' };
}

async function checkProof(
  provider: Provider,
  ctx: TokenEndpointGrantContext<ExchangeParams>,
  /** The URL the request was sent to when that is not the issuer's token endpoint (the mTLS alias). */
  tokenUrl: string | undefined,
): Promise<VerifiedProof | undefined> {
  const header = ctx.get('DPoP');
  if (!header) return undefined;
  let proof: VerifiedProof;
  try {
    proof = await verifyDpopProof(header, { method: ctx.method, url: tokenUrl ?? ctx.oidc.urlFor('token') });
  } catch (err) {
    if (err instanceof DpopProofError) throw new errors.InvalidDpopProof(err.message);
    throw err;
  }
  // The store oidc-provider's own grants use (keyed by client and jti, lib/helpers/validate_dpop.js
  // checkDpopReplay), so a proof sent with a refresh cannot be replayed here, nor the other way round.
  const unique = await provider.ReplayDetection.unique(
    ctx.oidc.client.clientId,
    proof.jti,
    proof.iat + DPOP_MAX_SKEW_S + 1,
  );
  if (!unique) throw new errors.InvalidDpopProof('DPoP proof replayed');
  return proof;
}
