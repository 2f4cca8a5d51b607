/** A KeyValueStore in memory: for tests, and for a client that should leave nothing behind. */
import type { KeyValueStore, Write } from './kv.js';

/** One namespace: its values, and its keys kept in order, so that a prefix is found by binary search and not by a sort. */
class Space {
  readonly values = new Map<string, Uint8Array>();
  readonly keys: string[] = [];

  /** The index of the first key not below `key`. */
  lowerBound(key: string): number {
    let [low, high] = [0, this.keys.length];
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.keys[middle]! < key) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  set(key: string, value: Uint8Array): void {
    if (!this.values.has(key)) this.keys.splice(this.lowerBound(key), 0, key);
    this.values.set(key, value);
  }

  delete(key: string): void {
    if (!this.values.delete(key)) return;
    this.keys.splice(this.lowerBound(key), 1);
  }

  /** The keys that start with `prefix`, in order. */
  keysWith(prefix: string): string[] {
    const found: string[] = [];
    for (let i = this.lowerBound(prefix); i < this.keys.length && this.keys[i]!.startsWith(prefix); i++) found.push(this.keys[i]!);
    return found;
  }
}

export class MemoryStore implements KeyValueStore {
  readonly #spaces = new Map<string, Space>();

  async get(ns: string, key: string): Promise<Uint8Array | undefined> {
    return this.#spaces.get(ns)?.values.get(key)?.slice();
  }

  async list(ns: string, prefix: string, options: { limit?: number; reverse?: boolean } = {}): Promise<[string, Uint8Array][]> {
    const space = this.#spaces.get(ns);
    if (space === undefined) return [];
    const keys = space.keysWith(prefix);
    if (options.reverse === true) keys.reverse();
    return keys.slice(0, options.limit ?? keys.length).map((k) => [k, space.values.get(k)!.slice()]);
  }

  async write(writes: readonly Write[]): Promise<void> {
    for (const { ns, key, value } of writes) {
      let space = this.#spaces.get(ns);
      if (space === undefined) this.#spaces.set(ns, (space = new Space()));
      if (value === undefined) space.delete(key);
      else space.set(key, value.slice());
    }
  }

  async close(): Promise<void> {
    for (const space of this.#spaces.values()) for (const value of space.values.values()) value.fill(0);
    this.#spaces.clear();
  }
}
