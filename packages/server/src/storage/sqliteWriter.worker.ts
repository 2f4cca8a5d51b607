/**
 * The SQLite mailbox writer's thread (see sqliteWriter.ts). It owns one
 * connection and runs each group commit as prepared statements in one
 * transaction, answering only once the transaction is committed, and so (with
 * synchronous=FULL) on disk. A failed transaction is rolled back whole and
 * answered as failed; the thread goes on.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { armCrash, faultPoint } from '../faultPoints.js';
import { accountsOf, admit, mailboxKey, type Acknowledgement, type Committed, type NewEnvelope } from './mailbox.js';
import { openSqlite } from './sqlite.js';
import type { WriterConfig, WriterReply, WriterRequest } from './sqliteWriter.js';

const port = parentPort;
if (port === null) throw new Error('sqliteWriter.worker.ts runs as a worker thread');
const reply = (message: WriterReply) => {
  port.postMessage(message);
};

const { config } = workerData as { config: WriterConfig };
const db = openSqlite(config.path, config.synchronous);
armCrash(config.crashAt);

const sizesOf = db.prepare<[number], { device_id: number; n: number }>(
  'select device_id, count(*) as n from envelopes where account_id = ? group by device_id',
);
const remove = db.prepare<[number, number, number]>('delete from envelopes where account_id = ? and device_id = ? and id = ?');
const allocate = db.prepare<[number], number>("update counters set value = value + ? where name = 'envelope_id' returning value").pluck();
const insert = db.prepare<[number, number, number, string, number, number, Buffer, number]>(
  'insert into envelopes (id, account_id, device_id, source, source_device, type, body, timestamp) values (?, ?, ?, ?, ?, ?, ?, ?)',
);

/** The same steps, in the same order, as kyselyMailboxWriter's transaction. */
const commit = db.transaction((sends: readonly (readonly NewEnvelope[])[], acks: readonly Acknowledgement[], timestamp: number): Committed => {
  const sizes = new Map<string, number>();
  for (const accountId of accountsOf(sends)) {
    for (const row of sizesOf.all(accountId)) sizes.set(mailboxKey(accountId, row.device_id), row.n);
  }
  const admitted = admit(sends, sizes);
  for (const ack of acks) for (const id of ack.ids) remove.run(ack.accountId, ack.deviceId, id);
  const accepted = sends.filter((_, i) => admitted[i]).flat();
  if (accepted.length === 0) return { admitted, firstId: 0 };
  const firstId = allocate.get(accepted.length)! - accepted.length + 1;
  accepted.forEach((e, i) => {
    const body = Buffer.from(e.body.buffer, e.body.byteOffset, e.body.byteLength);
    insert.run(firstId + i, e.accountId, e.deviceId, e.source, e.sourceDevice, e.type, body, timestamp);
  });
  faultPoint('mid-commit');
  return { admitted, firstId };
});

port.on('message', (request: WriterRequest) => {
  if (request.kind === 'close') {
    db.close();
    port.close();
    return;
  }
  try {
    reply({ kind: 'committed', committed: commit(request.sends, request.acks, request.timestamp) });
  } catch (error) {
    reply({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
  }
});
reply({ kind: 'ready' });
