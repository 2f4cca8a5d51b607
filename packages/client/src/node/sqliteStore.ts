/**
 * The client's store in Node: one SQLite file (better-sqlite3), one table of
 * (namespace, key, value), WAL mode with synchronous=FULL so that what the
 * client has acknowledged to the server survives a crash. The file is created
 * with mode 0600 inside a folder of mode 0700; it is not encrypted (see
 * docs/ARCHITECTURE.md, "What the local store protects").
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import SQLite from 'better-sqlite3';

import { ClientError } from '../errors.js';
import type { KeyValueStore, Write } from '../store/kv.js';

/** The first key after every key that starts with `prefix`. */
function prefixEnd(prefix: string): string {
  return `${prefix}\uffff`;
}

export class SqliteStore implements KeyValueStore {
  readonly #db: SQLite.Database;
  readonly #get: SQLite.Statement<[string, string], { value: Buffer }>;
  readonly #put: SQLite.Statement<[string, string, Buffer]>;
  readonly #delete: SQLite.Statement<[string, string]>;
  readonly #list: Record<'asc' | 'desc', SQLite.Statement<[string, string, string, number], { key: string; value: Buffer }>>;
  readonly #apply: (writes: readonly Write[]) => void;

  /** Opens (creating if needed) the store at `path`. @throws if the file cannot be opened. */
  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#db = new SQLite(path);
    chmodSync(path, 0o600);
    // One process per profile: two would each advance the same sessions and the last to write would win,
    // reusing message keys. The exclusive lock is taken now and held until close.
    this.#db.pragma('locking_mode = EXCLUSIVE');
    try {
      this.#db.exec('begin immediate; commit');
    } catch (error) {
      this.#db.close();
      throw new ClientError('PROFILE_IN_USE', `the profile ${dirname(path)} is open in another process; close it first`, { cause: error });
    }
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    // Deleted records (used prekeys, replaced sessions) are overwritten, not left in free pages: forward secrecy on disk.
    this.#db.pragma('secure_delete = ON');
    this.#db.exec('create table if not exists kv (ns text not null, key text not null, value blob not null, primary key (ns, key)) without rowid');
    this.#get = this.#db.prepare('select value from kv where ns = ? and key = ?');
    this.#put = this.#db.prepare('insert into kv (ns, key, value) values (?, ?, ?) on conflict (ns, key) do update set value = excluded.value');
    this.#delete = this.#db.prepare('delete from kv where ns = ? and key = ?');
    const list = (order: 'asc' | 'desc') =>
      this.#db.prepare<[string, string, string, number], { key: string; value: Buffer }>(
        `select key, value from kv where ns = ? and key >= ? and key < ? order by key ${order} limit ?`,
      );
    this.#list = { asc: list('asc'), desc: list('desc') };
    this.#apply = this.#db.transaction((writes: readonly Write[]) => {
      for (const { ns, key, value } of writes) {
        if (value === undefined) this.#delete.run(ns, key);
        else this.#put.run(ns, key, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      }
    });
  }

  async get(ns: string, key: string): Promise<Uint8Array | undefined> {
    const row = this.#get.get(ns, key);
    return row === undefined ? undefined : new Uint8Array(row.value);
  }

  async list(ns: string, prefix: string, options: { limit?: number; reverse?: boolean } = {}): Promise<[string, Uint8Array][]> {
    const rows = this.#list[options.reverse === true ? 'desc' : 'asc'].all(ns, prefix, prefixEnd(prefix), options.limit ?? -1);
    return rows.map((r) => [r.key, new Uint8Array(r.value)]);
  }

  async write(writes: readonly Write[]): Promise<void> {
    this.#apply(writes);
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
