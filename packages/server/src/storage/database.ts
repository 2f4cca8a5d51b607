/**
 * Opens the database: SQLite in a data folder (the embedded default, opened as
 * sqlite.ts says) or PostgreSQL, behind one Kysely interface, and brings its
 * schema up to date.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { Kysely, Migrator, PostgresDialect, sql, SqliteDialect } from 'kysely';
import pg from 'pg';

import { migrationProvider } from './migrations/index.js';
import type { Schema } from './schema.js';
import { openSqlite, type Synchronous } from './sqlite.js';

export type Engine = 'sqlite' | 'postgres';

export type DatabaseConfig =
  | { readonly engine: 'sqlite'; readonly dataDir: string; readonly synchronous: Synchronous }
  | { readonly engine: 'postgres'; readonly url: string; readonly poolSize: number };

export interface Database {
  readonly db: Kysely<Schema>;
  readonly engine: Engine;
  /** Where the data lives, for the startup banner (a PostgreSQL URL without its password). */
  readonly location: string;
  close(): Promise<void>;
}

// BIGINT columns hold ids, counters and millisecond times, all far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/**
 * Opens and migrates the database.
 * @throws if the database cannot be opened or a migration fails; nothing is served then.
 */
export async function openDatabase(config: DatabaseConfig): Promise<Database> {
  let db: Kysely<Schema>;
  let location: string;
  if (config.engine === 'sqlite') {
    const dir = resolve(config.dataDir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    location = join(dir, 'parley.sqlite');
    db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: openSqlite(location, config.synchronous) }) });
  } else {
    const url = new URL(config.url);
    url.password = url.password === '' ? '' : '***';
    location = url.toString();
    db = new Kysely<Schema>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: config.url, max: config.poolSize }) }),
    });
  }

  // Without a schema, Kysely's Migrator takes its bookkeeping tables in ANY schema of the database for its own,
  // skips creating them in ours, and then fails; name the schema the server's tables go to.
  const schema =
    config.engine === 'postgres'
      ? ((await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db)).rows[0]?.schema ?? undefined)
      : undefined;
  const migrator = new Migrator({
    db,
    provider: migrationProvider(config.engine),
    ...(schema === undefined ? {} : { migrationTableSchema: schema }),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error !== undefined || failed !== undefined) {
    await db.destroy();
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed`, { cause: error });
  }
  return { db, engine: config.engine, location, close: () => db.destroy() };
}

/** A Node Buffer over the same bytes, which both drivers bind as binary (no copy). */
export function blob(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
