/**
 * The one storage interface the client needs: byte values under string keys,
 * grouped in namespaces, read by key or by key prefix in key order, and
 * written atomically. Everything the client keeps (keys, sessions, contacts,
 * messages) is encoded on top of it, so an engine is a few dozen lines:
 * SQLite in Node (node/sqliteStore.ts), memory for tests, IndexedDB in
 * browsers (the web client).
 *
 * Values are bytes, never strings, because some of them are secrets.
 */

/** One write: a value to put, or `undefined` to delete the key. */
export interface Write {
  readonly ns: string;
  readonly key: string;
  readonly value: Uint8Array | undefined;
}

export interface KeyValueStore {
  get(ns: string, key: string): Promise<Uint8Array | undefined>;
  /** The entries of `ns` whose key starts with `prefix`, in key order (reversed on request), at most `limit`. */
  list(ns: string, prefix: string, options?: { readonly limit?: number; readonly reverse?: boolean }): Promise<[string, Uint8Array][]>;
  /** Applies every write, in order, or none of them. Resolves once they are durable. */
  write(writes: readonly Write[]): Promise<void>;
  close(): Promise<void>;
}

const entryKey = (ns: string, key: string) => `${ns}\u0000${key}`;

/**
 * A unit of work over a store: reads see its own writes first, and nothing
 * reaches the store until `commit`, which writes everything at once. The
 * client decrypts through one, so that a message, the session it advanced and
 * the keys it consumed are stored together or not at all.
 */
export class Transaction {
  readonly #store: KeyValueStore;
  readonly #writes = new Map<string, Write>();

  constructor(store: KeyValueStore) {
    this.#store = store;
  }

  async get(ns: string, key: string): Promise<Uint8Array | undefined> {
    const pending = this.#writes.get(entryKey(ns, key));
    return pending !== undefined ? pending.value : this.#store.get(ns, key);
  }

  /** `list` of the store with this transaction's writes applied (for the small namespaces that need it). */
  async list(ns: string, prefix: string): Promise<[string, Uint8Array][]> {
    const entries = new Map(await this.#store.list(ns, prefix));
    for (const write of this.#writes.values()) {
      if (write.ns !== ns || !write.key.startsWith(prefix)) continue;
      if (write.value === undefined) entries.delete(write.key);
      else entries.set(write.key, write.value);
    }
    return [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  put(ns: string, key: string, value: Uint8Array): void {
    this.#writes.set(entryKey(ns, key), { ns, key, value });
  }

  delete(ns: string, key: string): void {
    this.#writes.set(entryKey(ns, key), { ns, key, value: undefined });
  }

  /** Writes everything at once; the transaction may be used again afterwards, empty. */
  async commit(): Promise<void> {
    if (this.#writes.size === 0) return;
    const writes = [...this.#writes.values()];
    this.#writes.clear();
    await this.#store.write(writes);
  }
}
