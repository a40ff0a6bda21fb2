/** Holds secrets in this process only: a login lasts as long as the process. */
export class MemoryStore {
    kind = 'memory';
    #items = new Map();
    async get(account) {
        return this.#items.get(account) ?? null;
    }
    async set(account, value) {
        this.#items.set(account, value);
    }
    async delete(account) {
        return this.#items.delete(account);
    }
}
