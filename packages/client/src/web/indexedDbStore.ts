/**
 * The client's store in browsers: one IndexedDB database per profile, one
 * object store keyed by [namespace, key]. A `write` is one readwrite
 * transaction, so it applies whole or not at all; IndexedDB commits it
 * durably before `complete` (Chromium and Firefox default to relaxed
 * durability, so the transaction asks for strict).
 *
 * Browsers keep IndexedDB unencrypted in the user's profile, as Node keeps
 * the SQLite file (docs/ARCHITECTURE.md, "What the local store protects").
 */
import type { KeyValueStore, Write } from '../store/kv.js';

const STORE = 'kv';

const done = (request: IDBRequest) =>
  new Promise<unknown>((resolve, reject) => {
    request.onsuccess = () => {
      resolve(request.result);
    };
    request.onerror = () => {
      reject(request.error ?? new Error('an IndexedDB request failed'));
    };
  });

export class IndexedDbStore implements KeyValueStore {
  readonly #db: IDBDatabase;

  private constructor(db: IDBDatabase) {
    this.#db = db;
  }

  /** Opens (creating if needed) the profile database `name`. @throws if IndexedDB is unavailable (a private window, say). */
  static async open(name: string, factory: IDBFactory = indexedDB): Promise<IndexedDbStore> {
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(STORE);
    };
    return new IndexedDbStore((await done(request)) as IDBDatabase);
  }

  async get(ns: string, key: string): Promise<Uint8Array | undefined> {
    const value = await done(this.#db.transaction(STORE, 'readonly').objectStore(STORE).get([ns, key]));
    return value instanceof Uint8Array ? value : undefined;
  }

  async list(ns: string, prefix: string, options: { limit?: number; reverse?: boolean } = {}): Promise<[string, Uint8Array][]> {
    const range = IDBKeyRange.bound([ns, prefix], [ns, `${prefix}\uffff`]);
    const store = this.#db.transaction(STORE, 'readonly').objectStore(STORE);
    const out: [string, Uint8Array][] = [];
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    await new Promise<void>((resolve, reject) => {
      const cursor = store.openCursor(range, options.reverse === true ? 'prev' : 'next');
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (at === null || out.length >= limit) {
          resolve();
          return;
        }
        const [, key] = at.key as [string, string];
        if (at.value instanceof Uint8Array) out.push([key, at.value]);
        at.continue();
      };
      cursor.onerror = () => {
        reject(cursor.error ?? new Error('an IndexedDB cursor failed'));
      };
    });
    return out;
  }

  async write(writes: readonly Write[]): Promise<void> {
    const transaction = this.#db.transaction(STORE, 'readwrite', { durability: 'strict' });
    const store = transaction.objectStore(STORE);
    for (const { ns, key, value } of writes) {
      if (value === undefined) store.delete([ns, key]);
      else store.put(value.slice(), [ns, key]);
    }
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => {
        resolve();
      };
      transaction.onerror = transaction.onabort = () => {
        reject(transaction.error ?? new Error('an IndexedDB transaction failed'));
      };
    });
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
