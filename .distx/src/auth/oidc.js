import { CliError, sanitize } from '../errors.js';
import { isLoopbackHost } from '../net.js';
export { isLoopbackHost };
/**
 * The one rule for every URL the CLI sends a credential to (the issuer, the token, device and revocation
 * endpoints discovery names, the JWKS, the exchange endpoint): https, or plain http to a loopback address
 * with the named opt-in (`--insecure-http` / insecure_http in the user's own config). `what` names the URL
 * in the error ("issuer", "token endpoint", "exchange_endpoint").
 */
export function checkCredentialUrl(raw, insecureHttp, what = 'issuer') {
    let url;
    try {
        url = new URL(raw);
    }
    catch {
        throw new CliError('usage', `${what} "${sanitize(raw, 80)}" is not a URL`, {
            hint: `set it with \`mcp-secure config set ${what === 'exchange_endpoint' ? what : 'issuer'} https://…\``,
        });
    }
    if (url.protocol === 'https:')
        return url;
    if (url.protocol !== 'http:') {
        throw new CliError('usage', `${what} ${sanitize(raw, 80)} must use https`, {
            hint: `set it with \`mcp-secure config set ${what === 'exchange_endpoint' ? what : 'issuer'} https://…\``,
        });
    }
    if (!isLoopbackHost(url.hostname)) {
        throw new CliError('trust', `refusing plain-http ${what} ${sanitize(url.origin, 120)}: tokens would cross the network in clear`, { hint: `use an https:// ${what}` });
    }
    if (!insecureHttp) {
        throw new CliError('usage', `${what} ${url.origin} uses plain http`, {
            hint: 'for a local test IdP pass `--insecure-http` (or set insecure_http in your own config)',
        });
    }
    return url;
}
/**
 * OpenSSL's codes for a certificate chain this machine does not trust (as opposed to an unreachable host):
 * a private/company CA, a self-signed certificate, a server that leaves out its intermediate.
 */
const TLS_TRUST_CODES = new Set([
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'UNABLE_TO_GET_ISSUER_CERT',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'CERT_UNTRUSTED',
    'CERT_SIGNATURE_FAILURE',
]);
/** How to make Node trust a private CA (docs/faults.md, "An untrusted CA"). */
export const TLS_TRUST_HINT = "if your company signs its servers' certificates with its own CA, let Node trust it: NODE_EXTRA_CA_CERTS=/path/to/company-ca.pem " +
    '(any Node), or add it to the system store (`update-ca-certificates`) and set NODE_USE_SYSTEM_CA=1 (Node ≥ 22.19 / 24.6); ' +
    'never turn certificate checks off';
/** The OpenSSL code when `err` (a fetch failure, openid-client's wrapping) is a certificate trust failure. */
export function tlsTrustProblem(err) {
    let e = err;
    for (let depth = 0; depth < 6 && e && typeof e === 'object'; depth++) {
        const code = e.code;
        if (typeof code === 'string' && TLS_TRUST_CODES.has(code))
            return code;
        e = e.cause;
    }
    return undefined;
}
/**
 * Whether the issuer a discovery document names is the one configured: exact string equality after URL
 * parsing, as openid-client (oauth4webapi) compares them (RFC 8414 §3.3, OIDC Discovery §4.3). So
 * `https://idp/api/oidc/` is not `https://idp/api/oidc`; `https://idp` and `https://idp/` are the same URL.
 */
export function issuerMatches(configured, named) {
    if (typeof named !== 'string' || !URL.canParse(named) || !URL.canParse(configured))
        return false;
    return new URL(named).href === new URL(configured).href;
}
/** The one wording for a discovery document naming another issuer: login and doctor both use it. */
export function issuerMismatch(configured, named, profileArgs = '') {
    const theirs = sanitize(named, 200);
    const ours = sanitize(configured, 200);
    const slashOnly = typeof named === 'string' && named.replace(/\/+$/, '') === configured.replace(/\/+$/, '');
    return {
        message: `the IdP's discovery document names its issuer "${theirs}", but the profile's issuer is "${ours}"; they must be the same string${slashOnly ? ' (they differ in a trailing slash)' : ' (a possible mix-up attack)'}`,
        hint: slashOnly
            ? `set the issuer exactly as the IdP names it: \`mcp-secure config set issuer ${theirs}${profileArgs}\``
            : 'check the issuer URL with your IdP admin; do not change it to whatever a server names',
    };
}
/** https everywhere; plain http only for a loopback issuer and only with the named opt-in. */
export function checkIssuerUrl(issuer, insecureHttp) {
    return checkCredentialUrl(issuer, insecureHttp, 'issuer');
}
/**
 * The most the CLI reads of any one answer from an IdP or exchange endpoint. A discovery document or a
 * JWKS is a few KiB, a token answer less; 1 MiB is far above any real one and bounds memory against a
 * hostile server (a 300 MB discovery document took RSS to 1.86 GB before this cap).
 */
export const MAX_IDP_BODY_BYTES = 1024 * 1024;
/**
 * The response with its body read into memory, at most `max` bytes: a bigger one (by Content-Length, or
 * as it streams in) is cancelled and refused in one line naming the endpoint.
 */
export async function readCapped(response, endpoint, max = MAX_IDP_BODY_BYTES) {
    const tooBig = () => new CliError('error', `${sanitize(endpoint, 120)} sent an answer over ${max / 1024} KiB; refusing it`, {
        hint: 'this is a fault or an attack at the server; tell its operators (or check the URL)',
    });
    const declared = Number(response.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > max) {
        await response.body?.cancel().catch(() => undefined);
        throw tooBig();
    }
    const chunks = [];
    let total = 0;
    if (response.body) {
        const reader = response.body.getReader();
        for (;;) {
            const { done, value } = await reader.read();
            if (done)
                break;
            total += value.byteLength;
            if (total > max) {
                await reader.cancel().catch(() => undefined);
                throw tooBig();
            }
            chunks.push(value);
        }
    }
    // A 1xx/204/304 cannot carry a body; the Response constructor refuses one for them.
    const nullBody = [101, 204, 205, 304].includes(response.status);
    return new Response(nullBody ? null : Buffer.concat(chunks), {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
    });
}
export function networkReason(err) {
    let e = err;
    for (let depth = 0; depth < 5 && e && typeof e === 'object'; depth++) {
        const shape = e;
        if (typeof shape.code === 'string' && /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test(shape.code))
            return shape.code;
        if (shape.name === 'TimeoutError')
            return 'timed out';
        // undici's "fetch failed" carries the reason (refused, reset, a blocked port) in its cause.
        if (e instanceof TypeError && e.message === 'fetch failed') {
            const inner = e.cause;
            if (typeof inner?.code === 'string')
                return inner.code;
            return inner instanceof Error ? sanitize(inner.message, 60) : 'network error';
        }
        e = shape.cause;
    }
    return undefined;
}
/** The HTTP status of a 5xx answer behind an openid-client error (it keeps the Response as `cause`). */
function serverFailure(err) {
    let e = err;
    for (let depth = 0; depth < 5 && e && typeof e === 'object'; depth++) {
        const status = e.status;
        if (typeof status === 'number' && status >= 500 && status <= 599)
            return status;
        e = e.cause;
    }
    return undefined;
}
/** The OAuth `error` of a token/device/revocation endpoint answer, if that is what `err` is. */
export function oauthError(err) {
    if (!err || typeof err !== 'object')
        return undefined;
    const shape = err;
    if (typeof shape.error !== 'string')
        return undefined;
    const cause = shape.cause;
    const description = typeof shape.error_description === 'string'
        ? shape.error_description
        : typeof cause?.error_description === 'string'
            ? cause.error_description
            : '';
    return { error: sanitize(shape.error, 60), description: sanitize(description) };
}
/** The HTTP status of the answer behind an openid-client error (it keeps the Response as `cause`). */
export function httpStatusOf(err) {
    let e = err;
    for (let depth = 0; depth < 5 && e && typeof e === 'object'; depth++) {
        const status = e.status;
        if (typeof status === 'number' && status >= 100 && status <= 599)
            return status;
        e = e.cause;
    }
    return undefined;
}
/**
 * A failed RFC 7009 revocation, said as what it is. An IdP that refuses revocation answers 4xx, often with
 * an empty body (Glewlwyd: 401 to public clients), which openid-client reports as "not JSON": that is the
 * IdP's refusal, not a broken answer.
 */
export function revocationError(err, issuer) {
    const status = httpStatusOf(err);
    if (status !== undefined && status >= 400 && status < 500 && !oauthError(err)) {
        const why = status === 401
            ? ': its revocation endpoint wants client authentication, which this public client does not have'
            : '';
        return new CliError('error', `the IdP refused revocation (HTTP ${status}${why})`, {
            hint: 'ask your IdP admin to let the public client revoke its own tokens (RFC 7009 §2.1)',
            cause: err,
        });
    }
    return mapIdpError(err, issuer, 'token revocation');
}
/**
 * Turns whatever openid-client threw into a one-line CliError with the next step. `action` says what we
 * were doing ("discovery", "token request"). Branches on error codes, never on message text.
 */
export function mapIdpError(err, issuer, action, kind = 'error') {
    if (err instanceof CliError)
        return err;
    // Our own refusals from inside a request (the URL rule, the body cap) come back wrapped by openid-client.
    let inner = err;
    for (let depth = 0; depth < 5 && inner && typeof inner === 'object'; depth++) {
        if (inner instanceof CliError)
            return inner;
        inner = inner.cause;
    }
    if (err && typeof err === 'object' && err.name === 'AbortError') {
        return new CliError('interrupted', 'interrupted');
    }
    const tls = tlsTrustProblem(err);
    if (tls) {
        return new CliError('trust', `the TLS certificate of the IdP at ${issuer} is not trusted on this machine (${tls}) during ${action}`, { hint: TLS_TRUST_HINT, cause: err });
    }
    const net = networkReason(err);
    if (net) {
        return new CliError('error', `cannot reach the IdP at ${issuer} during ${action} (${net})`, {
            hint: 'check your network and the issuer URL (`mcp-secure config`)',
            cause: err,
        });
    }
    const oauth = oauthError(err);
    if (oauth) {
        const detail = oauth.description ? `: ${oauth.description}` : '';
        return new CliError(kind, `the IdP refused the ${action} (${oauth.error}${detail})`, {
            hint: 'run `mcp-secure login` again; if it keeps failing, check the client_id and scopes with your IdP admin',
            cause: err,
        });
    }
    const status = serverFailure(err);
    if (status !== undefined) {
        // A 5xx is the IdP's own trouble, not a wrong issuer URL: say so, so nobody edits a correct config.
        return new CliError('error', `the IdP at ${issuer} is failing (HTTP ${status}) during ${action}`, {
            hint: 'retry in a minute; if it keeps failing, tell your IdP admin',
            cause: err,
        });
    }
    const code = err && typeof err === 'object' ? err.code : undefined;
    switch (code) {
        case 'OAUTH_RESPONSE_IS_NOT_JSON':
        case 'OAUTH_RESPONSE_IS_NOT_CONFORM':
        case 'OAUTH_PARSE_ERROR':
        case 'OAUTH_INVALID_RESPONSE':
            return new CliError('error', `${issuer} did not give a valid OpenID Connect answer during ${action}`, {
                hint: action === 'discovery'
                    ? 'check the issuer URL: it must serve /.well-known/openid-configuration'
                    : 'the IdP answered something unexpected; retry, or run with --debug and report it',
                cause: err,
            });
        case 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED':
            return new CliError('trust', `the discovery document at ${issuer} names a different issuer (possible mix-up attack); refusing it`, { hint: 'set the issuer exactly as the IdP names itself, or ask your IdP admin', cause: err });
        case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
        case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
            return new CliError('trust', `the ID token from ${issuer} failed validation during ${action}`, {
                hint: 'check your clock, then run `mcp-secure login` again',
                cause: err,
            });
        case 'OAUTH_HTTP_REQUEST_FORBIDDEN':
        case 'OAUTH_REQUEST_PROTOCOL_FORBIDDEN':
            return new CliError('trust', `the IdP at ${issuer} pointed to a plain-http endpoint during ${action}`, {
                hint: 'the IdP must use https for every endpoint',
                cause: err,
            });
        case 'OAUTH_MISSING_SERVER_METADATA':
        case 'OAUTH_INVALID_SERVER_METADATA':
            return new CliError('error', `the IdP at ${issuer} does not support what ${action} needs`, {
                hint: 'use the other login flow (`--device` or `--browser`), or ask your IdP admin',
                cause: err,
            });
        default:
            break;
    }
    const message = err instanceof Error ? sanitize(err.message) : 'unknown error';
    return new CliError('error', `${action} with ${issuer} failed: ${message}`, {
        hint: 'retry; run with --debug for details',
        cause: err,
    });
}
/**
 * The fetch every IdP and exchange request goes through: the credential-URL rule on every URL (whatever
 * discovery names), every answer read with the size cap, and `--debug` lines with the method, endpoint and
 * status, never the query or the body, which carry codes and tokens.
 */
export function guardedFetch(fetchImpl, o) {
    return async (url, options) => {
        const endpoint = url.split('?')[0] ?? url;
        checkCredentialUrl(url, o.insecureHttp, 'endpoint');
        const started = Date.now();
        let response;
        try {
            response = await fetchImpl(url, options);
        }
        catch (err) {
            o.debug?.(`http ${options.method} ${endpoint} -> failed (${networkReason(err) ?? 'error'})`);
            throw err;
        }
        o.debug?.(`http ${options.method} ${endpoint} -> ${response.status} (${Date.now() - started} ms)`);
        return readCapped(response, endpoint);
    };
}
export async function connectIdp(options) {
    const issuerUrl = checkIssuerUrl(options.issuer, options.insecureHttp);
    const client = await import('openid-client');
    const customFetch = guardedFetch(options.fetch, {
        insecureHttp: options.insecureHttp,
        debug: options.debug,
    });
    const execute = [];
    // openid-client's own https check is all or nothing; with the opt-in, guardedFetch applies the finer rule
    // (http only to loopback) to every URL, discovery's endpoints included.
    if (options.insecureHttp)
        execute.push(client.allowInsecureRequests);
    let config;
    try {
        config = await client.discovery(issuerUrl, options.clientId, undefined, client.None(), {
            execute,
            timeout: options.timeout ?? 15,
            [client.customFetch]: customFetch,
        });
    }
    catch (err) {
        const code = err && typeof err === 'object' ? err.code : undefined;
        if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
            // oauth4webapi keeps the document it refused as cause.body: quote both strings exactly.
            const body = err.cause?.body;
            const { message, hint } = issuerMismatch(options.issuer, body?.issuer, options.profileArgs);
            throw new CliError('trust', message, { hint, cause: err });
        }
        throw mapIdpError(err, issuerUrl.href.replace(/\/$/, ''), 'discovery');
    }
    config[client.customFetch] = customFetch;
    config.timeout = options.timeout ?? 15;
    return { client, config, issuer: config.serverMetadata().issuer };
}
