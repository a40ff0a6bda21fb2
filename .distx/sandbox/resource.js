// The resource side of a tenant token: what the control plane checks before it serves a request. A JWT
// access token (RFC 9068) from the IdP, signed by a key in its JWKS, for this audience, not expired, naming
// exactly one tenant; when bound to a DPoP key (cnf.jkt), sent with the DPoP scheme and a fresh, unreplayed
// proof from that key (RFC 9449 §4.3, §7). startResource() wraps it in a tiny HTTP server for tests.
import http from 'node:http';
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify } from 'jose';
import { DPOP_ALGORITHMS, DpopProofError, ReplayCache, verifyDpopProof } from './dpop-proof.js';
/** A refused request: answer `status` with `challenge` as WWW-Authenticate. */
export class TokenVerificationError extends Error {
    code;
    scheme;
    status = 401;
    constructor(code, message, scheme = code === 'invalid_dpop_proof' ? 'DPoP' : 'Bearer', options) {
        super(message, options);
        this.code = code;
        this.scheme = scheme;
        this.name = 'TokenVerificationError';
    }
    /** The WWW-Authenticate value (RFC 6750 §3, RFC 9449 §7.1). */
    get challenge() {
        const error = `error="${this.code}", error_description="${quoted(this.message)}"`;
        const dpop = `DPoP algs="${DPOP_ALGORITHMS.join(' ')}"`;
        if (this.scheme === 'DPoP')
            return `${dpop}, ${error}`;
        if (this.scheme === 'Bearer')
            return `Bearer ${error}`;
        return `Bearer ${error}, ${dpop}`;
    }
}
function quoted(text) {
    return text.replace(/[^\x20-\x7e]|["\\]/g, '');
}
const TOKEN_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'];
const AUTHORIZATION = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i;
const DISCOVERY_TIMEOUT_MS = 5_000;
/** Discovers the issuer's JWKS once, then verifies requests; each verifier has its own DPoP replay cache. */
export async function createTokenVerifier(opts) {
    const fetchImpl = opts.fetch ?? fetch;
    const jwksUri = await discoverJwksUri(opts.issuer, fetchImpl);
    const jwks = createRemoteJWKSet(jwksUri, {
        ...(opts.jwksCooldownMs !== undefined ? { cooldownDuration: opts.jwksCooldownMs } : {}),
        [customFetch]: (url, init) => fetchImpl(url, init),
    });
    const replays = new ReplayCache();
    return async (req) => {
        const { scheme, token } = credentials(req.headers);
        let payload;
        try {
            ({ payload } = await jwtVerify(token, jwks, {
                issuer: opts.issuer,
                audience: opts.audience,
                typ: 'at+jwt', // RFC 9068 §4: also matches application/at+jwt
                algorithms: TOKEN_ALGORITHMS,
                requiredClaims: ['exp', 'iat', 'sub'],
            }));
        }
        catch (cause) {
            if (!(cause instanceof joseErrors.JOSEError) || cause instanceof joseErrors.JWKSTimeout)
                throw cause;
            throw new TokenVerificationError('invalid_token', describe(cause), 'Bearer', { cause });
        }
        const verified = claimsOf(payload);
        if (verified.jkt === undefined) {
            if (scheme === 'DPoP')
                throw new TokenVerificationError('invalid_token', 'the token is not DPoP-bound');
            return verified;
        }
        // Bound: the DPoP scheme and a proof from the key (RFC 9449 §7.1); a stolen token alone is useless.
        if (scheme !== 'DPoP') {
            throw new TokenVerificationError('invalid_token', 'a DPoP-bound token must be sent with the DPoP scheme', 'DPoP');
        }
        const header = req.headers['dpop'];
        if (typeof header !== 'string' || header === '') {
            throw new TokenVerificationError('invalid_dpop_proof', 'a DPoP proof is required');
        }
        let proof;
        try {
            proof = await verifyDpopProof(header, {
                method: req.method,
                url: absolute(req.url),
                accessToken: token,
            });
        }
        catch (cause) {
            if (!(cause instanceof DpopProofError))
                throw cause;
            throw new TokenVerificationError('invalid_dpop_proof', cause.message, 'DPoP', { cause });
        }
        if (proof.jkt !== verified.jkt) {
            throw new TokenVerificationError('invalid_dpop_proof', "the DPoP proof's key is not the token's key");
        }
        if (!replays.add(proof))
            throw new TokenVerificationError('invalid_dpop_proof', 'DPoP proof replayed');
        return verified;
    };
}
async function discoverJwksUri(issuer, fetchImpl) {
    const res = await fetchImpl(`${issuer}/.well-known/openid-configuration`, {
        headers: { accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS),
    });
    if (res.status !== 200)
        throw new Error(`discovery at ${issuer} answered HTTP ${res.status}`);
    const meta = await res.json();
    if (typeof meta !== 'object' || meta === null)
        throw new Error(`discovery at ${issuer}: not a JSON object`);
    const { issuer: named, jwks_uri: jwksUri } = meta;
    // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
    if (named !== issuer)
        throw new Error(`discovery at ${issuer} names another issuer`);
    if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri)) {
        throw new Error(`discovery at ${issuer} has no usable jwks_uri`);
    }
    return new URL(jwksUri);
}
function credentials(headers) {
    const value = headers['authorization'];
    if (value === undefined || value === '') {
        throw new TokenVerificationError('invalid_token', 'no access token in the Authorization header', 'both');
    }
    const match = typeof value === 'string' ? AUTHORIZATION.exec(value.trim()) : null;
    if (!match?.[1] || !match[2]) {
        throw new TokenVerificationError('invalid_token', 'the Authorization header is not Bearer or DPoP', 'both');
    }
    return { scheme: match[1].toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer', token: match[2] };
}
function claimsOf(payload) {
    const refuse = (message) => new TokenVerificationError('invalid_token', message);
    const { sub, exp } = payload;
    const tenant = payload['tenant'];
    const roles = payload['roles'] ?? [];
    const scope = payload['scope'] ?? '';
    const cnf = payload['cnf'];
    if (typeof sub !== 'string' || sub === '')
        throw refuse('the token has no subject');
    if (typeof exp !== 'number')
        throw refuse('the token has no expiry');
    if (typeof tenant !== 'string' || tenant === '')
        throw refuse('the token must name exactly one tenant');
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) {
        throw refuse('the token has malformed roles');
    }
    if (typeof scope !== 'string')
        throw refuse('the token has a malformed scope');
    let jkt;
    if (cnf !== undefined) {
        const bound = typeof cnf === 'object' && cnf !== null ? cnf['jkt'] : undefined;
        if (typeof bound !== 'string' || bound === '')
            throw refuse('the token has a confirmation it cannot honour');
        jkt = bound;
    }
    return {
        sub,
        tenant,
        roles,
        scope,
        exp,
        ...(jkt !== undefined ? { jkt } : {}),
        claims: { ...payload },
    };
}
function describe(err) {
    if (err instanceof joseErrors.JWTExpired)
        return 'the token has expired';
    if (err instanceof joseErrors.JWTClaimValidationFailed)
        return `the token's ${err.claim} claim is not acceptable`;
    if (err instanceof joseErrors.JWSSignatureVerificationFailed)
        return 'the token signature does not verify';
    if (err instanceof joseErrors.JWKSNoMatchingKey)
        return 'the token is not signed by a key of the issuer';
    return `the token is not acceptable (${err.code})`;
}
function absolute(url) {
    if (!URL.canParse(url))
        throw new TypeError('TokenRequest.url must be an absolute URL');
    return url;
}
export async function startResource(opts) {
    const verify = await createTokenVerifier(opts);
    let origin = '';
    const server = http.createServer((req, res) => {
        void serve(req, res).catch(() => {
            if (res.headersSent)
                res.destroy();
            else
                sendJson(res, 503, { error: 'temporarily_unavailable' });
        });
    });
    async function serve(req, res) {
        // The URL the client addressed is our own origin plus the path: never the Host header, which the
        // client controls (and which a tunnel rewrites).
        const url = new URL(req.url ?? '/', origin);
        if (url.pathname !== '/whoami') {
            sendJson(res, 404, { error: 'not_found' });
            return;
        }
        if (req.method !== 'GET') {
            sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET' });
            return;
        }
        try {
            const token = await verify({ method: req.method, url: url.href, headers: req.headers });
            sendJson(res, 200, token);
        }
        catch (err) {
            if (!(err instanceof TokenVerificationError))
                throw err;
            sendJson(res, err.status, { error: err.code, error_description: err.message }, { 'www-authenticate': err.challenge });
        }
    }
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
        });
    });
    origin = `http://127.0.0.1:${server.address().port}`;
    return {
        url: origin,
        close: () => new Promise((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
        }),
    };
}
/** A JSON answer with its length and no caching: shared by the sandbox's servers. */
export function sendJson(res, status, body, headers = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
        ...headers,
    });
    res.end(text);
}
