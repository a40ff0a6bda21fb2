// DPoP proof checks (RFC 9449 §4.3) shared by the sandbox IdP's token exchange and the resource check.
//
// oidc-provider validates proofs for its own grants, but a grant registered with registerGrantType()
// receives only ctx: the bound helpers (validateDpop, checkDpopReplay) go to the built-in grants alone
// (oidc-provider lib/helpers/initialize_app.js, lib/actions/token.js), so the exchange checks its proof here.
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, errors as joseErrors, jwtVerify } from 'jose';
/** The algorithms oidc-provider v9 advertises by default (dpop_signing_alg_values_supported). */
export const DPOP_ALGORITHMS = Object.freeze(['ES256', 'Ed25519', 'EdDSA']);
/** How far a proof's iat may be from now, either way, in seconds. */
export const DPOP_MAX_SKEW_S = 60;
const MAX_JTI_LENGTH = 256;
export class DpopProofError extends Error {
    constructor(message, options) {
        super(message, options);
        this.name = 'DpopProofError';
    }
}
export function accessTokenHash(accessToken) {
    return createHash('sha256').update(accessToken).digest('base64url');
}
/** Verifies one DPoP proof JWT. Replay is the caller's job (the jti and iat are returned for it). */
export async function verifyDpopProof(proof, expected) {
    let verified;
    try {
        // EmbeddedJWK refuses a header key that is private or symmetric; typ and alg are pinned here.
        verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...DPOP_ALGORITHMS] });
    }
    catch (cause) {
        const reason = cause instanceof joseErrors.JOSEError ? cause.code : 'malformed';
        throw new DpopProofError(`DPoP proof did not verify (${reason})`, { cause });
    }
    const { payload, protectedHeader } = verified;
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > MAX_JTI_LENGTH) {
        throw new DpopProofError('DPoP proof must have a jti');
    }
    if (typeof payload.iat !== 'number' || !Number.isFinite(payload.iat)) {
        throw new DpopProofError('DPoP proof must have an iat');
    }
    const now = expected.now ?? Math.floor(Date.now() / 1000);
    if (Math.abs(now - payload.iat) > DPOP_MAX_SKEW_S) {
        throw new DpopProofError('DPoP proof iat is not recent enough');
    }
    if (payload['htm'] !== expected.method) {
        throw new DpopProofError('DPoP proof htm mismatch');
    }
    if (typeof payload['htu'] !== 'string' || withoutQuery(payload['htu']) !== withoutQuery(expected.url)) {
        throw new DpopProofError('DPoP proof htu mismatch');
    }
    if (expected.accessToken !== undefined && payload['ath'] !== accessTokenHash(expected.accessToken)) {
        throw new DpopProofError('DPoP proof ath mismatch');
    }
    if (!protectedHeader.jwk)
        throw new DpopProofError('DPoP proof has no jwk header');
    const jkt = await calculateJwkThumbprint(protectedHeader.jwk, 'sha256');
    return { jkt, jti: payload.jti, iat: payload.iat };
}
function withoutQuery(url) {
    const parsed = URL.canParse(url) ? new URL(url) : undefined;
    if (!parsed)
        return undefined;
    parsed.search = '';
    parsed.hash = '';
    return parsed.href;
}
/**
 * Remembers proofs seen within their acceptance window so each is accepted once (§11.1). Bounded: when
 * full of live entries the oldest goes first, which only matters under a flood of fresh proofs.
 */
export class ReplayCache {
    max;
    #seen = new Map(); // key → epoch ms after which the proof is stale anyway
    constructor(max = 10_000) {
        this.max = max;
    }
    /** True the first time a proof is seen, false for a replay. */
    add(proof, nowMs = Date.now()) {
        const key = `${proof.jkt} ${proof.jti}`;
        const until = this.#seen.get(key);
        if (until !== undefined && until > nowMs)
            return false;
        this.#seen.delete(key);
        if (this.#seen.size >= this.max) {
            for (const [k, t] of this.#seen)
                if (t <= nowMs)
                    this.#seen.delete(k);
            for (const k of this.#seen.keys()) {
                if (this.#seen.size < this.max)
                    break;
                this.#seen.delete(k);
            }
        }
        this.#seen.set(key, (proof.iat + DPOP_MAX_SKEW_S + 1) * 1000);
        return true;
    }
    get size() {
        return this.#seen.size;
    }
}
