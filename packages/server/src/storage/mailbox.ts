/**
 * Mailboxes: one per device, holding the envelopes not yet acknowledged by it.
 * Every query is scoped by (account, device), so no id a client sends can
 * reach another device's mailbox.
 *
 * Writes go through a `MailboxWriter`, which stores a group commit's sends and
 * deletes its acknowledged envelopes in one transaction. On PostgreSQL it runs
 * the Kysely queries below; on SQLite a thread of its own does the same with
 * prepared statements (sqliteWriter.ts), so that inserting, and waiting for
 * the disk, never stops the server's event loop.
 */
import { sql, type Kysely, type Transaction } from 'kysely';

import { faultPoint } from '../faultPoints.js';
import { MAX_MAILBOX_ENVELOPES } from '../limits.js';
import { blob } from './database.js';
import type { Schema } from './schema.js';

type Db = Kysely<Schema> | Transaction<Schema>;

export interface StoredEnvelope {
  readonly id: number;
  readonly accountId: number;
  readonly deviceId: number;
  readonly source: string;
  readonly sourceDevice: number;
  readonly type: number;
  readonly body: Uint8Array;
  readonly timestamp: number;
}

/** An envelope to store: the commit gives it its id and timestamp. */
export type NewEnvelope = Omit<StoredEnvelope, 'id' | 'timestamp'>;

/** A group commit's result: whether each send was stored, and the id of the first envelope stored. */
export interface Committed {
  /** Per send: stored, or refused because a mailbox it names is full (MAX_MAILBOX_ENVELOPES). */
  readonly admitted: readonly boolean[];
  /** Stored envelopes have consecutive ids from here, in the order of their sends. */
  readonly firstId: number;
}

export interface MailboxWriter {
  /**
   * In one transaction: deletes the acknowledged envelopes, then stores each
   * send whole, or refuses it whole if a mailbox it names would grow past
   * MAX_MAILBOX_ENVELOPES. Every envelope stored gets `timestamp`. Resolves
   * once the transaction is durable.
   */
  commit(sends: readonly (readonly NewEnvelope[])[], acks: readonly Acknowledgement[], timestamp: number): Promise<Committed>;
  close(): Promise<void>;
}

/**
 * Which sends fit their mailboxes, given each mailbox's size before the batch
 * (by `mailboxKey`; absent is empty). Sends are taken in order, and a refused
 * send takes no room.
 */
export function admit(sends: readonly (readonly NewEnvelope[])[], sizes: Map<string, number>): boolean[] {
  return sends.map((envelopes) => {
    const added = new Map<string, number>();
    for (const e of envelopes) {
      const key = mailboxKey(e.accountId, e.deviceId);
      added.set(key, (added.get(key) ?? sizes.get(key) ?? 0) + 1);
    }
    for (const size of added.values()) if (size > MAX_MAILBOX_ENVELOPES) return false;
    for (const [key, size] of added) sizes.set(key, size);
    return true;
  });
}

/** The accounts a batch of sends writes to. */
export const accountsOf = (sends: readonly (readonly NewEnvelope[])[]): number[] => [...new Set(sends.flatMap((s) => s.map((e) => e.accountId)))];

/** The mailbox writer that runs through Kysely (PostgreSQL). */
export function kyselyMailboxWriter(db: Kysely<Schema>): MailboxWriter {
  return {
    commit: (sends, acks, timestamp) =>
      db.transaction().execute(async (trx) => {
        const admitted = admit(sends, await mailboxSizes(trx, accountsOf(sends)));
        await deleteEnvelopes(trx, acks);
        const firstId = await insertEnvelopes(
          trx,
          sends.filter((_, i) => admitted[i]).flat(),
          timestamp,
        );
        if (firstId !== 0) faultPoint('mid-commit');
        return { admitted, firstId };
      }),
    close: async () => undefined,
  };
}

/** Rows per INSERT: 8 parameters each keeps a statement far below both engines' parameter limits. */
const INSERT_CHUNK = 500;

/** Mailbox key for maps: `${accountId}.${deviceId}`. */
export function mailboxKey(accountId: number, deviceId: number): string {
  return `${accountId}.${deviceId}`;
}

/**
 * Stores envelopes in the given order, giving them consecutive new ids from
 * the `envelope_id` counter (one row update per call, which also serializes
 * concurrent writers on PostgreSQL so ids follow commit order). Returns the
 * first id (0 when there is nothing to store).
 */
async function insertEnvelopes(trx: Transaction<Schema>, envelopes: readonly NewEnvelope[], timestamp: number): Promise<number> {
  if (envelopes.length === 0) return 0;
  const { value } = await trx
    .updateTable('counters')
    .set((eb) => ({ value: eb('value', '+', envelopes.length) }))
    .where('name', '=', 'envelope_id')
    .returning('value')
    .executeTakeFirstOrThrow();
  const first = value - envelopes.length + 1;
  for (let start = 0; start < envelopes.length; start += INSERT_CHUNK) {
    await trx
      .insertInto('envelopes')
      .values(
        envelopes.slice(start, start + INSERT_CHUNK).map((e, i) => ({
          id: first + start + i,
          account_id: e.accountId,
          device_id: e.deviceId,
          source: e.source,
          source_device: e.sourceDevice,
          type: e.type,
          body: blob(e.body),
          timestamp,
        })),
      )
      .execute();
  }
  return first;
}

/** Envelopes acknowledged on one mailbox's connection. */
export interface Acknowledgement {
  readonly accountId: number;
  readonly deviceId: number;
  readonly ids: readonly number[];
}

/**
 * Ids per DELETE (three parameters each): far below both engines' parameter
 * limits. One statement serves every mailbox of a group commit, where a
 * statement per mailbox would cost a query compilation and a prepare each.
 */
const DELETE_CHUNK = 1_000;

/**
 * Deletes acknowledged envelopes from their mailboxes. Each id is matched as
 * the row (account, device, id), so an id from another mailbox matches
 * nothing. Both engines look every row up by index (SQLite: the
 * `envelopes_mailbox` index for the VALUES list; PostgreSQL: the primary key,
 * then the mailbox checked). PostgreSQL types a VALUES column from its typed
 * entries, so only the first row casts its untyped parameters; casting every
 * row would make SQLite's prepare several times slower.
 */
async function deleteEnvelopes(trx: Db, acks: readonly Acknowledgement[]): Promise<number> {
  const rows = acks.flatMap((a) => a.ids.map((id) => [a.accountId, a.deviceId, id] as const));
  let deleted = 0;
  for (let start = 0; start < rows.length; start += DELETE_CHUNK) {
    const values = rows
      .slice(start, start + DELETE_CHUNK)
      .map(([account, device, id], i) =>
        i === 0 ? sql`(cast(${account} as bigint), cast(${device} as integer), cast(${id} as bigint))` : sql`(${account}, ${device}, ${id})`,
      );
    const result = await trx
      .deleteFrom('envelopes')
      .where(sql`(account_id, device_id, id)`, 'in', sql`(values ${sql.join(values)})`)
      .executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  return deleted;
}

/** Up to `limit` envelopes of a mailbox after `afterId`, in order. */
export async function readMailbox(db: Db, accountId: number, deviceId: number, afterId: number, limit: number): Promise<StoredEnvelope[]> {
  const rows = await db
    .selectFrom('envelopes')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('device_id', '=', deviceId)
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    accountId: r.account_id,
    deviceId: r.device_id,
    source: r.source,
    sourceDevice: r.source_device,
    type: r.type,
    body: r.body,
    timestamp: r.timestamp,
  }));
}

/** Envelopes stored per mailbox of the given accounts (mailboxes with none are absent). */
async function mailboxSizes(db: Db, accountIds: readonly number[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  if (accountIds.length === 0) return sizes;
  const rows = await db
    .selectFrom('envelopes')
    .select(['account_id', 'device_id', (eb) => eb.fn.countAll<number>().as('n')])
    .where('account_id', 'in', accountIds)
    .groupBy(['account_id', 'device_id'])
    .execute();
  for (const r of rows) sizes.set(mailboxKey(r.account_id, r.device_id), r.n);
  return sizes;
}

/** Every stored envelope, for the metrics gauge. */
export async function totalEnvelopes(db: Db): Promise<number> {
  const row = await db.selectFrom('envelopes').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return row.n;
}
