/**
 * What a long-running command (connect, mcp, audit tail, audit verify) starts, ended together: its own
 * abort signal — aborted by the CLI's (Ctrl-C, SIGTERM, SIGHUP) or by the command itself — and the
 * cleanups registered as things were started, run last-first once the command is done, each failure
 * ignored so that one cannot keep the others from running.
 */
export class CommandScope {
  readonly #stop = new AbortController();
  readonly #parent: AbortSignal;
  readonly #onAbort = () => this.#stop.abort(this.#parent.reason);
  readonly cleanups: Array<() => unknown> = [];

  constructor(parent: AbortSignal) {
    this.#parent = parent;
    parent.addEventListener('abort', this.#onAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Ends the scope's signal (a no-op once it has ended). */
  abort(reason: Error): void {
    if (!this.#stop.signal.aborted) this.#stop.abort(reason);
  }

  /** The CLI's signal no longer ends this scope: the command is winding down on its own. */
  detach(): void {
    this.#parent.removeEventListener('abort', this.#onAbort);
  }

  /** Aborts, detaches and runs the cleanups, last registered first. */
  async close(reason = 'cleanup'): Promise<void> {
    this.abort(new Error(reason));
    this.detach();
    for (const c of this.cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  }
}
