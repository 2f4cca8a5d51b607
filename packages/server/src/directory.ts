/**
 * Accounts as the rest of the server sees them, cached in memory: every send
 * checks its destinations' device sets, so this is the hottest read there is.
 * Whatever changes an account (a new device, a new device list) calls
 * `invalidate` after its transaction commits; in a cluster, that tells the
 * other nodes to forget their copies too.
 */
import type { Kysely } from 'kysely';

import type { Cluster } from './cluster/cluster.js';
import { findAccount, findAccountById, type StoredAccount } from './storage/accounts.js';
import type { Schema } from './storage/schema.js';

/** Accounts kept in memory; a cache miss costs two indexed reads. */
const CACHE_SIZE = 10_000;

export class Directory {
  readonly #db: Kysely<Schema>;
  readonly #cluster: Cluster | undefined;
  readonly #byName = new Map<string, StoredAccount>();
  readonly #byId = new Map<number, StoredAccount>();
  /**
   * Counts invalidations. A read that overlapped one may have seen the state
   * before the change committed, so its result is returned but not cached.
   */
  #epoch = 0;

  constructor(db: Kysely<Schema>, cluster?: Cluster) {
    this.#db = db;
    this.#cluster = cluster;
  }

  /** The account, if it is in the cache (a send's fast path; see PostOffice.accept). */
  cached(username: string): StoredAccount | undefined {
    return this.#byName.get(username);
  }

  async byUsername(username: string): Promise<StoredAccount | undefined> {
    const cached = this.#byName.get(username);
    if (cached !== undefined) return cached;
    const epoch = this.#epoch;
    const account = await findAccount(this.#db, username);
    if (account !== undefined && epoch === this.#epoch) this.#remember(account);
    return account;
  }

  async byId(id: number): Promise<StoredAccount | undefined> {
    const cached = this.#byId.get(id);
    if (cached !== undefined) return cached;
    const epoch = this.#epoch;
    const account = await findAccountById(this.#db, id);
    if (account !== undefined && epoch === this.#epoch) this.#remember(account);
    return account;
  }

  /** Forgets an account, here and on every other node, so the next read sees what was just committed. */
  invalidate(id: number): void {
    this.forgetChanged(id);
    this.#cluster?.accountChanged(id);
  }

  /** Forgets an account that changed on another node. */
  forgetChanged(id: number): void {
    this.#epoch++;
    this.#forget(id);
  }

  /** Forgets every account (a cluster's news of changes may have been lost). */
  forgetAll(): void {
    this.#epoch++;
    this.#byId.clear();
    this.#byName.clear();
  }

  #forget(id: number): void {
    const account = this.#byId.get(id);
    if (account === undefined) return;
    this.#byId.delete(id);
    this.#byName.delete(account.username);
  }

  #remember(account: StoredAccount): void {
    if (this.#byId.size >= CACHE_SIZE) {
      const oldest = this.#byId.values().next().value;
      if (oldest !== undefined) this.#forget(oldest.id);
    }
    this.#byId.set(account.id, account);
    this.#byName.set(account.username, account);
  }
}
