import { CliError, sanitize } from '../errors.js';
import { httpStatusOf, mapIdpError, networkReason, oauthError, TLS_TRUST_HINT, tlsTrustProblem, } from './oidc.js';
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** A tenant token that lives longer than this is refused: these are meant to live minutes, not days. */
export const MAX_TENANT_TOKEN_LIFETIME_S = 3600;
export { checkTenantName } from '../config/schema.js';
export function describeUser(user) {
    return user.preferred_username ?? user.email ?? user.name ?? user.sub;
}
function decodeJwtPayload(token) {
    const parts = token.split('.');
    if (parts.length !== 3 || !parts[1])
        return undefined;
    try {
        const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
        return payload && typeof payload === 'object' && !Array.isArray(payload)
            ? payload
            : undefined;
    }
    catch {
        return undefined;
    }
}
/** The signature algorithms a tenant token may use: asymmetric only (never `none`, never an HMAC). */
const TENANT_TOKEN_ALGS = [
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
    'EdDSA',
    'Ed25519',
];
/**
 * Failures that are about where the exchange was sent, said with the endpoint actually called: with a
 * configured exchange_endpoint, "cannot reach the IdP at <issuer>" sent people to the wrong server.
 */
function exchangeEndpointError(err, idp, req) {
    const config = req.config ?? idp.config;
    const endpoint = String(config.serverMetadata().token_endpoint ?? idp.issuer);
    const custom = req.customEndpoint === true;
    const which = custom
        ? `the token-exchange endpoint ${endpoint} (exchange_endpoint)`
        : `the IdP's token endpoint ${endpoint}`;
    const check = custom
        ? "check exchange_endpoint (`mcp-secure config`): it must be the control plane's RFC 8693 endpoint"
        : 'if the control plane exchanges tokens elsewhere, set it: `mcp-secure config set exchange_endpoint https://…`';
    const oauth = oauthError(err);
    if (oauth?.error === 'unsupported_grant_type') {
        const grants = idp.config.serverMetadata().grant_types_supported;
        const listed = !custom && Array.isArray(grants) && !grants.includes(TOKEN_EXCHANGE_GRANT)
            ? '; its discovery document lists no token-exchange grant either'
            : '';
        return new CliError('error', `${which} does not support RFC 8693 token exchange (unsupported_grant_type${listed})`, {
            hint: custom
                ? check
                : "this IdP has no RFC 8693: set exchange_endpoint to the control plane's token-exchange endpoint (`mcp-secure config set exchange_endpoint https://…`)",
            cause: err,
        });
    }
    const tls = tlsTrustProblem(err);
    if (tls) {
        return new CliError('trust', `the TLS certificate of ${which} is not trusted on this machine (${tls})`, {
            hint: TLS_TRUST_HINT,
            cause: err,
        });
    }
    const status = httpStatusOf(err);
    if (status === 404 || status === 405) {
        return new CliError('error', `${which} answered HTTP ${status} (${status === 404 ? 'no such endpoint' : 'method not allowed'})`, {
            hint: check,
            cause: err,
        });
    }
    const net = networkReason(err);
    if (net) {
        return new CliError('error', `cannot reach ${which} (${net})`, {
            hint: custom ? `${check}, and up` : 'check your network or VPN, and that the IdP is up',
            cause: err,
        });
    }
    return undefined;
}
/**
 * RFC 8693 exchange for a tenant token, and the checks that make it safe to use: exactly the tenant and
 * audience asked for, an expiry that is present and short. Anything else is a trust failure (exit 5).
 */
export async function exchangeForTenant(idp, req) {
    const params = {
        subject_token: req.subjectToken,
        subject_token_type: ACCESS_TOKEN_TYPE,
        requested_token_type: ACCESS_TOKEN_TYPE,
        resource: req.resource,
        tenant: req.tenant,
    };
    if (req.role !== 'member')
        params['role'] = req.role;
    let answer;
    try {
        answer = await idp.client.genericGrantRequest(req.config ?? idp.config, TOKEN_EXCHANGE_GRANT, params, req.dpop);
    }
    catch (err) {
        const where = exchangeEndpointError(err, idp, req);
        if (where)
            throw where;
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
                throw new CliError('auth', `the ${req.role} role on ${req.tenant} needs a fresh, stronger sign-in${detail}`, {
                    hint: 'run again with `--role admin`, which asks you to sign in with your security key',
                    cause: err,
                });
            case 'invalid_grant':
                throw new CliError('auth', `the IdP no longer accepts your login for token exchange${detail}`, {
                    hint: 'run `mcp-secure login`',
                    cause: err,
                });
            default:
                throw mapIdpError(err, idp.issuer, 'token exchange', 'auth');
        }
    }
    await verifyTenantSignature(answer.access_token, req);
    return checkTenantToken(answer, req);
}
/**
 * The tenant token's JWS signature, by a key of the expected issuer's JWKS, and its `iss`. Without this a
 * hostile or spoofed exchange endpoint could mint any claims (an unsigned `alg: none` token was accepted).
 */
export async function verifyTenantSignature(token, req) {
    const { jwtVerify } = await import('jose');
    const who = sanitize(req.verifier.issuer, 100);
    try {
        await jwtVerify(token, req.verifier.keys, {
            issuer: req.verifier.issuer,
            algorithms: TENANT_TOKEN_ALGS,
            currentDate: new Date(req.now()),
            clockTolerance: 30,
        });
    }
    catch (err) {
        if (err instanceof CliError)
            throw err;
        const code = err.code;
        const claim = err.claim;
        switch (code) {
            case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
                if (claim === 'iss')
                    throw refuse(`it was issued by someone else than ${who}`);
                throw refuse(`its ${sanitize(claim, 20)} claim is invalid`);
            case 'ERR_JWT_EXPIRED':
                throw refuse('it has already expired (check your clock)');
            case 'ERR_JOSE_ALG_NOT_ALLOWED':
            case 'ERR_JOSE_NOT_SUPPORTED':
                throw refuse('it is unsigned or signed with an algorithm not allowed for tenant tokens');
            case 'ERR_JWKS_NO_MATCHING_KEY':
            case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
            case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
                throw refuse(`it is not signed by a key of ${who}`);
            case 'ERR_JWS_INVALID':
            case 'ERR_JWT_INVALID':
                throw refuse('it is not a JWT, so its tenant and expiry cannot be checked');
            case 'ERR_JWKS_TIMEOUT':
            case 'ERR_JWKS_INVALID':
                throw new CliError('error', `cannot get the signing keys (JWKS) of ${who} to check the tenant token`, {
                    hint: 'retry; if it keeps failing, tell the IdP or control-plane operators',
                    cause: err,
                });
            default:
                throw mapIdpError(err, req.verifier.issuer, 'tenant token check');
        }
    }
}
function refuse(message) {
    return new CliError('trust', `refusing the tenant token: ${message}`, {
        hint: 'this is a fault or an attack at the control plane; report it to its operators',
    });
}
export function checkTenantToken(answer, req) {
    const claims = decodeJwtPayload(answer.access_token);
    if (!claims)
        throw refuse('it is not a JWT, so its tenant and expiry cannot be checked');
    if (typeof claims['tenant'] !== 'string' || claims['tenant'] !== req.tenant) {
        throw refuse(`it names tenant "${sanitize(claims['tenant'], 64)}", not ${req.tenant}`);
    }
    // Exactly one tenant: a second tenant claim is a token a server may read as good for more than asked.
    if (claims['tenants'] !== undefined) {
        throw refuse(`it carries a "tenants" claim besides tenant ${req.tenant}`);
    }
    // Exactly the MCP resource: a token with extra audiences can be replayed at those other services.
    const aud = claims['aud'];
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (audiences.length !== 1 || audiences[0] !== req.resource) {
        throw refuse(`its audience is ${sanitize(JSON.stringify(aud ?? null), 100)}, not exactly ${req.resource}`);
    }
    const exp = claims['exp'];
    if (typeof exp !== 'number' || !Number.isFinite(exp))
        throw refuse('it has no expiry');
    const now = req.now();
    const lifetime = exp - Math.floor(now / 1000);
    if (lifetime > MAX_TENANT_TOKEN_LIFETIME_S) {
        throw refuse(`it lives ${Math.round(lifetime / 60)} min; tenant tokens must live at most ${MAX_TENANT_TOKEN_LIFETIME_S / 60} min`);
    }
    if (lifetime <= 0)
        throw refuse('it has already expired (check your clock)');
    const roles = Array.isArray(claims['roles'])
        ? claims['roles'].filter((r) => typeof r === 'string')
        : [];
    if (req.role === 'admin' && !roles.includes('admin'))
        throw refuse('the admin role was asked for but not granted');
    const cnf = claims['cnf'];
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
