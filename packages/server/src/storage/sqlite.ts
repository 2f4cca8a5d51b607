/**
 * Opens Parley's SQLite file as every connection to it must be opened: the
 * server's own and its mailbox writer's (sqliteWriter.ts).
 *
 * WAL mode with `synchronous=FULL` by default: a transaction is on disk when
 * its commit returns, so an acknowledged envelope survives a crash of the
 * process, the machine or its power. `normal` survives a crash of the process
 * only, and is faster. Readers never wait for the writer in WAL mode; writers
 * wait for each other for up to `busy_timeout`.
 */
import SQLite from 'better-sqlite3';

export type Synchronous = 'full' | 'normal';

export function openSqlite(path: string, synchronous: Synchronous): SQLite.Database {
  const sqlite = new SQLite(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  return sqlite;
}
