/**
 * Keeps the SSH chain up for as long as the session lasts: when it drops, the local port stays open, the
 * chain is re-dialled with exponential backoff and jitter (host keys verified again), and a local
 * connection that arrives meanwhile waits, bounded, instead of failing at once.
 */
import { CliError } from '../errors.js';
import type { Transport } from './transport.js';

type Chain = Transport;

export type TunnelEvent =
  | { type: 'up'; redials: number }
  | { type: 'down'; reason: string }
  | { type: 'redial'; attempt: number; delayMs: number; error: string }
  | { type: 'fatal'; error: CliError };

export interface SupervisorOptions {
  dial(): Promise<Transport>;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  random(): number;
  signal: AbortSignal;
  onEvent?(event: TunnelEvent): void;
  /** How long a local connection waits for a re-dial, in ms. */
  connectWaitMs?: number;
}

const MAX_BACKOFF_MS = 30_000;

function isFatal(err: unknown): err is CliError {
  return err instanceof CliError && (err.kind === 'trust' || err.kind === 'auth');
}

export class Supervisor {
  readonly #o: SupervisorOptions;
  #chain: Chain | undefined;
  #waiters: Array<(transport: Transport | Error) => void> = [];
  #fatal: CliError | undefined;
  #loop: Promise<void> | undefined;
  /** close() was called: a dial that completes afterwards is closed at once, never set up. */
  #closed = false;
  redials = 0;

  constructor(options: SupervisorOptions) {
    this.#o = options;
  }

  get up(): boolean {
    return this.#chain !== undefined;
  }

  /** The first dial: its errors go straight to the user. */
  async start(): Promise<void> {
    const chain = await this.#o.dial();
    if (this.#closedWith(chain)) throw new CliError('interrupted', 'the session ended');
    this.#setUp(chain);
    this.#loop = this.#watch();
    this.#loop.catch(() => undefined);
  }

  /** Resolves when the session ends (signal) or rejects on a fatal error during a re-dial. */
  done(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  /**
   * A dial can outlast the session: `connect` dials SSH while the tenant token is fetched, and a refused
   * token ends the session mid-dial (open-tunnel.ts). The chain it then brings (an `ssh` child) would keep
   * the process alive with nobody to close it.
   */
  #closedWith(chain: Chain): boolean {
    if (!this.#closed) return false;
    chain.close();
    return true;
  }

  #setUp(chain: Chain): void {
    this.#chain = chain;
    this.#o.onEvent?.({ type: 'up', redials: this.redials });
    for (const w of this.#waiters.splice(0)) w(chain);
  }

  async #watch(): Promise<void> {
    const o = this.#o;
    while (!o.signal.aborted) {
      const chain = this.#chain!;
      await Promise.race([
        chain.closed,
        new Promise<void>((r) => o.signal.addEventListener('abort', () => r(), { once: true })),
      ]);
      if (o.signal.aborted) return;
      this.#chain = undefined;
      o.onEvent?.({ type: 'down', reason: 'the SSH connection closed' });
      for (let attempt = 1; !o.signal.aborted; attempt++) {
        const base = Math.min(500 * 2 ** (attempt - 1), MAX_BACKOFF_MS);
        const delayMs = Math.round(base * (0.5 + o.random() / 2));
        try {
          this.redials += 1;
          const next = await o.dial();
          if (this.#closedWith(next)) return;
          this.#setUp(next);
          break;
        } catch (err) {
          if (isFatal(err)) {
            this.#fatal = err;
            o.onEvent?.({ type: 'fatal', error: err });
            for (const w of this.#waiters.splice(0)) w(err);
            throw err;
          }
          o.onEvent?.({
            type: 'redial',
            attempt,
            delayMs,
            error: err instanceof Error ? err.message : String(err),
          });
          await o.sleep(delayMs, o.signal).catch(() => undefined);
        }
      }
    }
  }

  /**
   * The current transport, waiting (bounded) while a re-dial is under way. `avoid`: a transport just found
   * dead; until the supervisor has noticed that too, wait for the next one instead of handing it back.
   */
  client(avoid?: Transport): Promise<Transport> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    if (this.#chain && this.#chain !== avoid) return Promise.resolve(this.#chain);
    const waitMs = this.#o.connectWaitMs ?? 20_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new CliError(
            'error',
            `the SSH tunnel has been down for over ${waitMs / 1000} s; still re-dialling`,
          ),
        );
      }, waitMs);
      const waiter = (c: Transport | Error) => {
        clearTimeout(timer);
        if (c instanceof Error) reject(c);
        else resolve(c);
      };
      this.#waiters.push(waiter);
    });
  }

  close(): void {
    this.#closed = true;
    this.#chain?.close();
    this.#chain = undefined;
    for (const w of this.#waiters.splice(0)) w(new CliError('interrupted', 'the session ended'));
  }
}
