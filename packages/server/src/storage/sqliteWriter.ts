/**
 * The SQLite mailbox writer: group commits run on a thread of their own
 * (sqliteWriter.worker.ts), with its own connection to the database file.
 * A commit of a few hundred envelopes takes milliseconds of inserting and
 * then, with synchronous=FULL, a wait for the disk; on the server's thread
 * both would stop every connection meanwhile. The server's thread keeps its
 * own connection for everything else, reads of mailboxes included (WAL mode
 * lets them run beside the writer and see every commit it has answered).
 *
 * One commit runs at a time (the post office waits for each), so requests
 * and answers pair up in order.
 */
import { Worker } from 'node:worker_threads';

import type { CrashPlan } from '../faultPoints.js';
import type { Acknowledgement, Committed, MailboxWriter, NewEnvelope } from './mailbox.js';
import type { Synchronous } from './sqlite.js';

export interface WriterConfig {
  readonly path: string;
  readonly synchronous: Synchronous;
  /** For fault-injection tests only: armed in the writer's thread too, which is where `mid-commit` is reached. */
  readonly crashAt?: CrashPlan | undefined;
}

export type WriterRequest =
  | {
      readonly kind: 'commit';
      readonly sends: readonly (readonly NewEnvelope[])[];
      readonly acks: readonly Acknowledgement[];
      readonly timestamp: number;
    }
  | { readonly kind: 'close' };

export type WriterReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'committed'; readonly committed: Committed }
  | { readonly kind: 'failed'; readonly message: string };

/**
 * The worker runs TypeScript, as the server does: a bootstrap registers tsx
 * in the new thread (loader hooks are per thread) and imports the worker.
 */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
import(workerData.tsx).then(({ register }) => { register(); return import(workerData.script); });
`;

/**
 * Starts the writer thread and resolves once its connection is open.
 * @throws if the thread cannot start or open the database.
 */
export async function startSqliteWriter(config: WriterConfig): Promise<MailboxWriter> {
  const worker = new Worker(BOOTSTRAP, {
    eval: true,
    workerData: {
      tsx: import.meta.resolve('tsx/esm/api'),
      script: new URL('sqliteWriter.worker.ts', import.meta.url).href,
      config,
    },
  });
  let waiting: { resolve: (reply: WriterReply) => void; reject: (error: Error) => void } | undefined;
  let broken: Error | undefined;
  const request = (message: WriterRequest) =>
    new Promise<WriterReply>((resolve, reject) => {
      if (broken !== undefined) {
        reject(broken);
        return;
      }
      waiting = { resolve, reject };
      worker.postMessage(message);
    });
  const fail = (error: Error) => {
    broken ??= error;
    waiting?.reject(broken);
    waiting = undefined;
  };
  worker.on('message', (reply: WriterReply) => {
    const pending = waiting;
    waiting = undefined;
    pending?.resolve(reply);
  });
  worker.on('error', (error) => {
    fail(new Error('the SQLite writer thread failed', { cause: error }));
  });
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', (code) => {
      fail(new Error(`the SQLite writer thread exited (${code})`));
      resolve();
    });
  });

  const ready = await new Promise<WriterReply>((resolve, reject) => {
    waiting = { resolve, reject };
  });
  if (ready.kind !== 'ready') throw new Error(`the SQLite writer thread did not start: ${ready.kind === 'failed' ? ready.message : ready.kind}`);

  return {
    async commit(sends, acks, timestamp) {
      const reply = await request({ kind: 'commit', sends, acks, timestamp });
      if (reply.kind === 'failed') throw new Error(`a SQLite group commit failed: ${reply.message}`);
      if (reply.kind !== 'committed') throw new Error(`the SQLite writer answered ${reply.kind} to a commit`);
      return reply.committed;
    },
    async close() {
      if (broken === undefined) worker.postMessage({ kind: 'close' } satisfies WriterRequest);
      await exited;
    },
  };
}
