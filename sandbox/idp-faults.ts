/**
 * Ways a real IdP differs from oidc-provider, as seen with Glewlwyd 2.7.5 (and many company app
 * registrations), for the CLI's tests: each is a Koa middleware around oidc-provider's own routes, so the
 * rest of the IdP stays the real thing.
 */
import type Provider from 'oidc-provider';

export interface IdpFaults {
  /**
   * Accept only these exact redirect URIs, port included (Glewlwyd, and most app registrations outside
   * RFC 8252 §7.3's any-port rule): any other redirect_uri gets an HTML 403 page in the browser and the
   * CLI hears nothing.
   */
  exactRedirectUris?: string[];
  /** A refused refresh_token grant is answered with an empty 400 (no JSON error body). */
  emptyRefreshErrors?: boolean;
  /** No RFC 8693: the token endpoint refuses the token-exchange grant (unsupported_grant_type), discovery lists none. */
  noTokenExchange?: boolean;
  /** Device authorization answers without verification_uri_complete (it is optional, RFC 8628 §3.2). */
  noVerificationUriComplete?: boolean;
  /**
   * Revocation needs client authentication: a public client gets an empty 401 at the revocation endpoint,
   * and discovery's revocation_endpoint_auth_methods_supported leaves out "none".
   */
  revocationNeedsClientAuth?: boolean;
}

type Middleware = Parameters<Provider['use']>[0];

const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function routeOf(ctx: Parameters<Middleware>[0]): string | undefined {
  const oidc: { route?: string } | undefined = ctx['oidc'];
  return oidc?.route;
}

function paramsOf(ctx: Parameters<Middleware>[0]): Record<string, unknown> | undefined {
  const oidc: { params?: Record<string, unknown> } | undefined = ctx['oidc'];
  return oidc?.params;
}

export function faultMiddlewares(faults: IdpFaults): Middleware[] {
  const out: Middleware[] = [];
  const exact = faults.exactRedirectUris;
  if (exact) {
    out.push(async (ctx, next) => {
      // The authorization request is a GET with its parameters in the query: known before oidc-provider runs.
      const redirectUri = ctx.query['redirect_uri'];
      if (ctx.method === 'GET' && /\/auth$/.test(ctx.path) && typeof redirectUri === 'string') {
        if (!exact.includes(redirectUri)) {
          ctx.status = 403;
          ctx.type = 'html';
          ctx.body = '<!doctype html><title>403</title><h1>Forbidden</h1><p>Invalid redirect_uri</p>';
          return;
        }
      }
      await next();
    });
  }
  if (faults.emptyRefreshErrors) {
    out.push(async (ctx, next) => {
      await next();
      if (routeOf(ctx) !== 'token' || paramsOf(ctx)?.['grant_type'] !== 'refresh_token') return;
      if (ctx.status === 400) {
        ctx.body = '';
        ctx.remove('content-type');
        ctx.status = 400;
      }
    });
  }
  if (faults.noTokenExchange) {
    out.push(async (ctx, next) => {
      await next();
      const body: unknown = ctx.body;
      if (routeOf(ctx) === 'discovery' && isRecord(body) && Array.isArray(body['grant_types_supported'])) {
        body['grant_types_supported'] = body['grant_types_supported'].filter(
          (g) => g !== TOKEN_EXCHANGE_GRANT,
        );
      }
      if (routeOf(ctx) === 'token' && paramsOf(ctx)?.['grant_type'] === TOKEN_EXCHANGE_GRANT) {
        ctx.status = 400;
        ctx.type = 'json';
        ctx.body = { error: 'unsupported_grant_type' };
      }
    });
  }
  if (faults.noVerificationUriComplete) {
    out.push(async (ctx, next) => {
      await next();
      const body: unknown = ctx.body;
      if (routeOf(ctx) === 'device_authorization' && isRecord(body)) delete body['verification_uri_complete'];
    });
  }
  if (faults.revocationNeedsClientAuth) {
    out.push(async (ctx, next) => {
      // Refused before oidc-provider sees it: nothing is revoked (the route is known by its path only).
      if (ctx.method === 'POST' && /\/token\/revocation$/.test(ctx.path)) {
        ctx.status = 401;
        ctx.set('www-authenticate', 'Basic realm="revocation"');
        ctx.body = '';
        ctx.status = 401;
        return;
      }
      await next();
      const body: unknown = ctx.body;
      if (routeOf(ctx) === 'discovery' && isRecord(body)) {
        body['revocation_endpoint_auth_methods_supported'] = ['client_secret_basic', 'client_secret_post'];
      }
    });
  }
  return out;
}
