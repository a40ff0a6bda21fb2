/**
 * DPoP proofs signed a little ahead of need. The key is non-extractable and lives only in the agent, so
 * every proof costs a round trip to it (a Unix socket write and read, the agent's turn, an ES256
 * signature): measured as the largest single part of the proxy's time per MCP call (docs/benchmarks.md).
 * Issue 19 suggests signing proofs before they are needed; this does it for the request shape a session
 * repeats (an MCP POST to one URL with one token): after its second use, the next proofs for it are asked
 * for in one batch in the background, and a request takes one that is ready.
 *
 * What this keeps of RFC 9449:
 *  - each proof is used once (its own jti; taken out of the pool when used);
 *  - `htm`, `htu` and `ath` are exactly the request's (the pool is keyed by all three, so a renewed token
 *    never gets a proof for the old one);
 *  - `iat` stays recent: a proof not used within `maxAgeMs` (2 s) of being signed is dropped, far inside
 *    the window resource servers allow (§11.1: "a few seconds"; the sandbox allows 60 s);
 *  - nothing is signed while the session is idle: refills happen only when a request takes a proof.
 * Pre-signed proofs are held in the memory of the process that holds the tenant token they are bound to,
 * and no longer than 2 s (docs/security.md).
 */

export interface ProofPoolOptions {
  /** Signs up to `count` proofs for one request shape (the agent may return fewer). */
  sign(htm: string, htu: string, ath: string, count: number): Promise<string[]>;
  /** The injected clock (ms). */
  now(): number;
  /** How long after signing a proof may still be used. */
  maxAgeMs?: number;
  /** How many proofs one refill asks for. */
  batch?: number;
}

interface Shape {
  ready: Array<{ proof: string; signedAt: number }>;
  uses: number;
  refilling: boolean;
  lastUse: number;
}

/** Request shapes kept at once (POST, GET and DELETE of the MCP endpoint, and one spare). */
const MAX_SHAPES = 4;

export class ProofPool {
  readonly #o: Required<ProofPoolOptions>;
  readonly #shapes = new Map<string, Shape>();
  /** Proofs signed, and proofs taken from the pool: for tests and the bench. */
  readonly counts = { signed: 0, fromPool: 0, signRequests: 0 };

  constructor(o: ProofPoolOptions) {
    this.#o = { maxAgeMs: 2000, batch: 8, ...o };
  }

  async take(htm: string, htu: string, ath: string): Promise<string> {
    const now = this.#o.now();
    const shape = this.#shape(`${htm}\n${htu}\n${ath}`, now);
    shape.uses += 1;
    shape.lastUse = now;
    while (shape.ready.length > 0 && now - (shape.ready[0]?.signedAt ?? 0) > this.#o.maxAgeMs)
      shape.ready.shift();
    const next = shape.ready.shift();
    if (shape.uses >= 2 && shape.ready.length < this.#o.batch / 2) this.#refill(shape, htm, htu, ath);
    if (next) {
      this.counts.fromPool += 1;
      return next.proof;
    }
    const [proof] = await this.#sign(htm, htu, ath, 1);
    if (proof === undefined) throw new Error('the agent returned no DPoP proof');
    return proof;
  }

  #shape(key: string, now: number): Shape {
    let shape = this.#shapes.get(key);
    if (!shape) {
      if (this.#shapes.size >= MAX_SHAPES) {
        // The least recently used shape goes (a token renewed, an endpoint no longer called).
        let oldest: string | undefined;
        let at = Number.POSITIVE_INFINITY;
        for (const [k, s] of this.#shapes) {
          if (s.lastUse < at) {
            at = s.lastUse;
            oldest = k;
          }
        }
        if (oldest !== undefined) this.#shapes.delete(oldest);
      }
      shape = { ready: [], uses: 0, refilling: false, lastUse: now };
      this.#shapes.set(key, shape);
    }
    return shape;
  }

  #refill(shape: Shape, htm: string, htu: string, ath: string): void {
    if (shape.refilling) return;
    shape.refilling = true;
    this.#sign(htm, htu, ath, this.#o.batch)
      .then((proofs) => {
        const signedAt = this.#o.now();
        for (const proof of proofs) shape.ready.push({ proof, signedAt });
      })
      // A failed refill costs nothing: the next request signs its own proof, and reports any error.
      .catch(() => undefined)
      .finally(() => {
        shape.refilling = false;
      });
  }

  async #sign(htm: string, htu: string, ath: string, count: number): Promise<string[]> {
    this.counts.signRequests += 1;
    const proofs = await this.#o.sign(htm, htu, ath, count);
    this.counts.signed += proofs.length;
    return proofs;
  }
}
