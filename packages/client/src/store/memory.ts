/** A KeyValueStore in memory: for tests, and for a client that should leave nothing behind. */
import type { KeyValueStore, Write } from './kv.js';

export class MemoryStore implements KeyValueStore {
  readonly #spaces = new Map<string, Map<string, Uint8Array>>();

  async get(ns: string, key: string): Promise<Uint8Array | undefined> {
    return this.#spaces.get(ns)?.get(key)?.slice();
  }

  async list(ns: string, prefix: string, options: { limit?: number; reverse?: boolean } = {}): Promise<[string, Uint8Array][]> {
    const keys = [...(this.#spaces.get(ns)?.keys() ?? [])].filter((k) => k.startsWith(prefix)).sort();
    if (options.reverse === true) keys.reverse();
    return keys.slice(0, options.limit ?? keys.length).map((k) => [k, this.#spaces.get(ns)!.get(k)!.slice()]);
  }

  async write(writes: readonly Write[]): Promise<void> {
    for (const { ns, key, value } of writes) {
      let space = this.#spaces.get(ns);
      if (space === undefined) this.#spaces.set(ns, (space = new Map<string, Uint8Array>()));
      if (value === undefined) space.delete(key);
      else space.set(key, value.slice());
    }
  }

  async close(): Promise<void> {
    for (const space of this.#spaces.values()) for (const value of space.values()) value.fill(0);
    this.#spaces.clear();
  }
}
