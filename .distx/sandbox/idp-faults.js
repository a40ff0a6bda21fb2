const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
function isRecord(value) {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}
function routeOf(ctx) {
    const oidc = ctx['oidc'];
    return oidc?.route;
}
function paramsOf(ctx) {
    const oidc = ctx['oidc'];
    return oidc?.params;
}
export function faultMiddlewares(faults) {
    const out = [];
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
            if (routeOf(ctx) !== 'token' || paramsOf(ctx)?.['grant_type'] !== 'refresh_token')
                return;
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
            const body = ctx.body;
            if (routeOf(ctx) === 'discovery' && isRecord(body) && Array.isArray(body['grant_types_supported'])) {
                body['grant_types_supported'] = body['grant_types_supported'].filter((g) => g !== TOKEN_EXCHANGE_GRANT);
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
            const body = ctx.body;
            if (routeOf(ctx) === 'device_authorization' && isRecord(body))
                delete body['verification_uri_complete'];
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
            const body = ctx.body;
            if (routeOf(ctx) === 'discovery' && isRecord(body)) {
                body['revocation_endpoint_auth_methods_supported'] = ['client_secret_basic', 'client_secret_post'];
            }
        });
    }
    return out;
}
