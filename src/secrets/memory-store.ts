import type { TokenStore } from './store.js';

/** Holds secrets in this process only: a login lasts as long as the process. */
export class MemoryStore implements TokenStore {
  readonly kind = 'memory' as const;
  readonly #items = new Map<string, string>();

  async get(account: string): Promise<string | null> {
    return this.#items.get(account) ?? null;
  }

  async set(account: string, value: string): Promise<void> {
    this.#items.set(account, value);
  }

  async delete(account: string): Promise<boolean> {
    return this.#items.delete(account);
  }
}
