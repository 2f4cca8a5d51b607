/**
 * The migrations, on SQLite (a temporary file) and PostgreSQL (a fresh
 * schema), run by Kysely's Migrator as `openDatabase` runs them: each one's
 * `down` restores exactly the schema before its `up`; at the latest version
 * the tables and columns are those of `schema.ts` (binary where it says bytes,
 * NOT NULL); all the way down nothing is left; opening a database twice
 * migrates it once; and on PostgreSQL another schema's migrations do not
 * stand in for this one's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import SQLite from 'better-sqlite3';
import { Kysely, Migrator, NO_MIGRATIONS, PostgresDialect, sql, SqliteDialect, type MigrationResultSet, type Selectable } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';

import { engineCases, freshStorage, type Storage } from '../../../../../testing/server.js';
// Also installs the pg parser that reads BIGINT as a number, as the server does.
import { blob, openDatabase, type DatabaseConfig, type Engine } from '../database.js';
import type { Schema } from '../schema.js';
import { migrationProvider, migrations } from './index.js';

/** How a column of schema.ts is stored: BLOB/BYTEA, TEXT, or an integer type. */
type Kind<V> = V extends Uint8Array ? 'binary' : V extends string ? 'text' : V extends number ? 'integer' : never;

/** Every column of every table of schema.ts, by kind; it fails to compile if one is missing, extra or of the wrong kind. */
const COLUMNS = {
  accounts: {
    id: 'integer',
    username: 'text',
    identity_key: 'binary',
    device_list: 'binary',
    device_list_signature: 'binary',
    device_list_version: 'integer',
    next_device_id: 'integer',
  },
  devices: { account_id: 'integer', device_id: 'integer', registration_id: 'integer', auth_key: 'binary' },
  signed_prekeys: { account_id: 'integer', device_id: 'integer', key_id: 'integer', public_key: 'binary', signature: 'binary' },
  one_time_prekeys: { account_id: 'integer', device_id: 'integer', key_id: 'integer', public_key: 'binary' },
  kyber_prekeys: {
    account_id: 'integer',
    device_id: 'integer',
    key_id: 'integer',
    public_key: 'binary',
    signature: 'binary',
    last_resort: 'integer',
  },
  envelopes: {
    id: 'integer',
    account_id: 'integer',
    device_id: 'integer',
    source: 'text',
    source_device: 'integer',
    type: 'integer',
    body: 'binary',
    timestamp: 'integer',
  },
  link_tokens: { token_hash: 'binary', account_id: 'integer', device_id: 'integer', expires_at: 'integer' },
  auth_challenges: { challenge: 'binary', username: 'text', device_id: 'integer', expires_at: 'integer' },
  counters: { name: 'text', value: 'integer' },
  secrets: { name: 'text', value: 'binary' },
} as const satisfies { readonly [T in keyof Schema]: { readonly [C in keyof Selectable<Schema[T]>]-?: Kind<Selectable<Schema[T]>[C]> } };

const KINDS: Readonly<Record<string, string>> = {
  blob: 'binary',
  bytea: 'binary',
  text: 'text',
  integer: 'integer',
  bigint: 'integer',
  int4: 'integer',
  int8: 'integer',
};

/**
 * Columns that accept NULL although schema.ts has none: on SQLite a PRIMARY KEY
 * that is not an INTEGER PRIMARY KEY accepts NULL (a known SQLite quirk), and
 * introspection reports the INTEGER PRIMARY KEY (the rowid) as nullable too.
 */
const NULLABLE: Readonly<Record<Engine, readonly string[]>> = {
  sqlite: ['accounts.id', 'auth_challenges.challenge', 'counters.name', 'envelopes.id', 'link_tokens.token_hash', 'secrets.name'],
  postgres: [],
};

interface Column {
  readonly type: string;
  readonly nullable: boolean;
}

/** Tables with their columns, and indexes (not Kysely's own bookkeeping). */
interface Snapshot {
  readonly tables: Record<string, Record<string, Column>>;
  readonly indexes: string[];
}

interface Target {
  readonly db: Kysely<Schema>;
  readonly config: DatabaseConfig;
  /** PostgreSQL: the fresh schema, named to the Migrator as `openDatabase` names it. */
  readonly schema?: string;
  snapshot(): Promise<Snapshot>;
  close(): Promise<void>;
}

async function openTarget(engine: Engine): Promise<Target> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'parley-migrations-'));
    const sqlite = new SQLite(join(dir, 'parley.sqlite'));
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('foreign_keys = ON');
    const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: sqlite }) });
    return {
      db,
      config: { engine, dataDir: join(dir, 'data'), synchronous: 'full' },
      snapshot: async () => {
        const { rows } = await sql<{ tableName: string; name: string }>`
          select tbl_name as "tableName", name from sqlite_master where type = 'index'`.execute(db);
        return { tables: await tablesOf(db, undefined), indexes: indexNames(rows) };
      },
      close: async () => {
        await db.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const storage: Storage = await freshStorage('postgres');
  const url = storage.url!;
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
  const schema = rows[0]!.schema;
  expect(schema).toMatch(/^parley_test_/);
  return {
    db,
    config: { engine, url, poolSize: 2 },
    schema,
    snapshot: async () => {
      const { rows } = await sql<{ tableName: string; name: string }>`
        select tablename as "tableName", indexname as name from pg_indexes where schemaname = ${schema}`.execute(db);
      return { tables: await tablesOf(db, schema), indexes: indexNames(rows) };
    },
    close: async () => {
      await db.destroy();
      await storage.drop();
    },
  };
}

async function tablesOf(db: Kysely<Schema>, schema: string | undefined): Promise<Snapshot['tables']> {
  const tables = await db.introspection.getTables();
  return Object.fromEntries(
    tables
      .filter((t) => schema === undefined || t.schema === schema)
      .map((t) => [t.name, Object.fromEntries(t.columns.map((c) => [c.name, { type: c.dataType.toLowerCase(), nullable: c.isNullable }]))] as const),
  );
}

const indexNames = (rows: readonly { tableName: string; name: string }[]) =>
  rows
    .filter((r) => !r.tableName.startsWith('kysely_'))
    .map((r) => r.name)
    .sort();

/**
 * A Migrator as `openDatabase` builds one. On PostgreSQL it must be told the schema: without one it takes
 * another test schema's bookkeeping tables for its own.
 */
const migrator = (target: Target, engine: Engine) =>
  new Migrator({
    db: target.db,
    provider: migrationProvider(engine),
    ...(target.schema === undefined ? {} : { migrationTableSchema: target.schema }),
  });

/** Fails the test unless every step succeeded, and returns the names of the migrations run. */
function succeeded({ error, results }: MigrationResultSet): string[] {
  expect(error).toBeUndefined();
  expect(results?.every((r) => r.status === 'Success'), JSON.stringify(results)).toBe(true);
  return results?.map((r) => r.migrationName) ?? [];
}

describe.each(engineCases)('migrations on $title', ({ engine, available }) => {
  const names = Object.keys(migrations(engine));
  let target: Target | undefined;

  afterEach(async () => {
    await target?.close();
    target = undefined;
  });

  it('are numbered in order', () => {
    expect(names.length).toBeGreaterThan(0);
    expect(names).toEqual([...names].sort());
    for (const [i, name] of names.entries()) expect(name).toMatch(new RegExp(`^${String(i + 1).padStart(4, '0')}_[a-z0-9_]+$`));
  });

  it.skipIf(!available)("each one's down restores exactly the schema before its up, and its up runs again after", async () => {
    target = await openTarget(engine);
    const m = migrator(target, engine);
    for (const name of names) {
      const before = await target.snapshot();
      expect(succeeded(await m.migrateUp())).toEqual([name]);
      const after = await target.snapshot();
      expect(after, `${name} changes the schema`).not.toEqual(before);
      expect(succeeded(await m.migrateDown())).toEqual([name]);
      expect(await target.snapshot(), `${name} down`).toEqual(before);
      expect(succeeded(await m.migrateUp())).toEqual([name]);
      expect(await target.snapshot(), `${name} up again`).toEqual(after);
    }
    expect(succeeded(await m.migrateUp())).toEqual([]);
  });

  it.skipIf(!available)('up creates every table of schema.ts and the envelope counter; down removes everything', async () => {
    target = await openTarget(engine);
    const m = migrator(target, engine);
    expect(succeeded(await m.migrateToLatest())).toEqual(names);

    const { tables, indexes } = await target.snapshot();
    const kindsOf = (columns: Record<string, Column>) =>
      Object.fromEntries(Object.entries(columns).map(([name, { type }]) => [name, KINDS[type] ?? type]));
    const kinds = Object.fromEntries(Object.entries(tables).map(([table, columns]) => [table, kindsOf(columns)]));
    expect(kinds).toEqual(COLUMNS);
    const nullable = Object.entries(tables).flatMap(([table, columns]) =>
      Object.entries(columns)
        .filter(([, { nullable }]) => nullable)
        .map(([c]) => `${table}.${c}`),
    );
    expect(nullable.sort()).toEqual(NULLABLE[engine]);
    expect(indexes).toContain('envelopes_mailbox');
    expect(await target.db.selectFrom('counters').selectAll().execute()).toEqual([{ name: 'envelope_id', value: 0 }]);
    const recorded = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(target.db);
    expect(recorded.rows.map((r) => r.name)).toEqual(names);

    expect(succeeded(await m.migrateTo(NO_MIGRATIONS))).toEqual([...names].reverse());
    expect(await target.snapshot()).toEqual({ tables: {}, indexes: [] });
    const left = await sql<{ name: string }>`select name from kysely_migration`.execute(target.db);
    expect(left.rows).toEqual([]);
  });

  it.skipIf(!available)('openDatabase twice on the same storage migrates once and keeps the data', async () => {
    target = await openTarget(engine);
    const first = await openDatabase(target.config);
    await first.db.insertInto('secrets').values({ name: 'probe', value: blob(Uint8Array.of(1, 2, 3)) }).execute();
    await first.db.updateTable('counters').set({ value: 41 }).where('name', '=', 'envelope_id').execute();
    await first.close();

    const second = await openDatabase(target.config);
    try {
      expect(await second.db.selectFrom('counters').selectAll().execute()).toEqual([{ name: 'envelope_id', value: 41 }]);
      const secret = await second.db.selectFrom('secrets').select('value').where('name', '=', 'probe').executeTakeFirstOrThrow();
      expect(new Uint8Array(secret.value)).toEqual(Uint8Array.of(1, 2, 3));
      const recorded = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(second.db);
      expect(recorded.rows.map((r) => r.name)).toEqual(names);
    } finally {
      await second.close();
    }
  });
});

const postgres = engineCases.find((c) => c.engine === 'postgres')!;

describe(`openDatabase on ${postgres.title}`, () => {
  it.skipIf(!postgres.available)('migrates its own schema when another schema of the database is already migrated', async () => {
    const [other, target] = [await openTarget('postgres'), await openTarget('postgres')];
    try {
      await (await openDatabase(other.config)).close();
      await (await openDatabase(target.config)).close();
      expect(Object.keys((await target.snapshot()).tables).sort()).toEqual(Object.keys(COLUMNS).sort());
    } finally {
      await other.close();
      await target.close();
    }
  });
});
