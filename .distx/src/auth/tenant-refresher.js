/**
 * The tenant-token refresher: keeps a tenant token fresh in memory for a long-lived tunnel (`connect`): refresh at about 80% of the
 * lifetime with jitter (so many tunnels do not stampede the IdP), retry with backoff when the IdP is
 * unreachable, and keep using the current token until it really expires. Driven by an injected clock.
 */
import { CliError } from '../errors.js';
const REFRESH_AT = 0.8;
const JITTER = 0.05;
const MIN_DELAY_MS = 1000;
const MAX_BACKOFF_MS = 60_000;
const MAX_ATTEMPTS = 10_000;
/** Errors that retrying will not fix: the user or the control plane must act. */
function isFinal(err) {
    return err instanceof CliError && (err.kind === 'auth' || err.kind === 'trust' || err.kind === 'usage');
}
export class TenantRefresher {
    #o;
    #token;
    constructor(options) {
        this.#o = options;
    }
    async start() {
        this.#token = await this.#o.obtain();
        return this.#token;
    }
    /** The current token while it is valid; undefined once it has expired. */
    current() {
        const t = this.#token;
        return t && t.expiresAt > this.#o.now() ? t : undefined;
    }
    /** When to refresh `token`: 80% of its lifetime, ± 5% jitter, never sooner than a second. */
    refreshDelay(token) {
        const lifetime = token.expiresAt - token.issuedAt;
        const jitter = (this.#o.random() * 2 - 1) * JITTER * lifetime;
        const at = token.issuedAt + REFRESH_AT * lifetime + jitter;
        return Math.max(MIN_DELAY_MS, at - this.#o.now());
    }
    /** Refreshes until the signal aborts; rejects on an error retrying cannot fix. */
    async run() {
        const o = this.#o;
        if (!this.#token)
            await this.start();
        while (!o.signal.aborted) {
            await o.sleep(this.refreshDelay(this.#token), o.signal);
            let expiredSaid = false;
            for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
                try {
                    this.#token = await o.obtain();
                    o.onEvent?.({ type: 'refreshed', token: this.#token });
                    break;
                }
                catch (err) {
                    if (isFinal(err)) {
                        o.onEvent?.({ type: 'failed', error: err });
                        throw err;
                    }
                    if (!expiredSaid && !this.current()) {
                        expiredSaid = true;
                        o.onEvent?.({ type: 'expired' });
                    }
                    const base = Math.min(MIN_DELAY_MS * 2 ** (attempt - 1), MAX_BACKOFF_MS);
                    const delayMs = Math.round(base * (0.5 + o.random() / 2));
                    o.onEvent?.({ type: 'retry', attempt, delayMs, error: err });
                    await o.sleep(delayMs, o.signal);
                }
            }
        }
    }
}
