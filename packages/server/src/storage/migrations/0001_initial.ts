/** The first schema: accounts, devices, the key directory, mailboxes and the server's own state. */
import { sql, type Kysely, type Migration } from 'kysely';

import type { Engine } from '../database.js';

export function initial(engine: Engine): Migration {
  const binary = engine === 'postgres' ? sql`bytea` : sql`blob`;
  const bigint = 'bigint' as const;

  return {
    async up(db: Kysely<unknown>): Promise<void> {
      let accounts = db.schema.createTable('accounts');
      accounts =
        engine === 'postgres'
          ? accounts.addColumn('id', bigint, (c) => c.primaryKey().generatedByDefaultAsIdentity())
          : accounts.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
      await accounts
        .addColumn('username', 'text', (c) => c.notNull().unique())
        .addColumn('identity_key', binary, (c) => c.notNull())
        .addColumn('device_list', binary, (c) => c.notNull())
        .addColumn('device_list_signature', binary, (c) => c.notNull())
        .addColumn('device_list_version', bigint, (c) => c.notNull())
        .addColumn('next_device_id', 'integer', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('devices')
        .addColumn('account_id', bigint, (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('device_id', 'integer', (c) => c.notNull())
        .addColumn('registration_id', 'integer', (c) => c.notNull())
        .addColumn('auth_key', binary, (c) => c.notNull())
        .addPrimaryKeyConstraint('devices_pk', ['account_id', 'device_id'])
        .execute();

      await db.schema
        .createTable('signed_prekeys')
        .addColumn('account_id', bigint, (c) => c.notNull())
        .addColumn('device_id', 'integer', (c) => c.notNull())
        .addColumn('key_id', 'integer', (c) => c.notNull())
        .addColumn('public_key', binary, (c) => c.notNull())
        .addColumn('signature', binary, (c) => c.notNull())
        .addPrimaryKeyConstraint('signed_prekeys_pk', ['account_id', 'device_id'])
        .addForeignKeyConstraint('signed_prekeys_device', ['account_id', 'device_id'], 'devices', ['account_id', 'device_id'], (c) =>
          c.onDelete('cascade'),
        )
        .execute();

      await db.schema
        .createTable('one_time_prekeys')
        .addColumn('account_id', bigint, (c) => c.notNull())
        .addColumn('device_id', 'integer', (c) => c.notNull())
        .addColumn('key_id', 'integer', (c) => c.notNull())
        .addColumn('public_key', binary, (c) => c.notNull())
        .addPrimaryKeyConstraint('one_time_prekeys_pk', ['account_id', 'device_id', 'key_id'])
        .addForeignKeyConstraint('one_time_prekeys_device', ['account_id', 'device_id'], 'devices', ['account_id', 'device_id'], (c) =>
          c.onDelete('cascade'),
        )
        .execute();

      await db.schema
        .createTable('kyber_prekeys')
        .addColumn('account_id', bigint, (c) => c.notNull())
        .addColumn('device_id', 'integer', (c) => c.notNull())
        .addColumn('key_id', 'integer', (c) => c.notNull())
        .addColumn('public_key', binary, (c) => c.notNull())
        .addColumn('signature', binary, (c) => c.notNull())
        .addColumn('last_resort', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('kyber_prekeys_pk', ['account_id', 'device_id', 'key_id'])
        .addForeignKeyConstraint('kyber_prekeys_device', ['account_id', 'device_id'], 'devices', ['account_id', 'device_id'], (c) =>
          c.onDelete('cascade'),
        )
        .execute();

      await db.schema
        .createTable('envelopes')
        .addColumn('id', bigint, (c) => c.primaryKey())
        .addColumn('account_id', bigint, (c) => c.notNull())
        .addColumn('device_id', 'integer', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('source_device', 'integer', (c) => c.notNull())
        .addColumn('type', 'integer', (c) => c.notNull())
        .addColumn('body', binary, (c) => c.notNull())
        .addColumn('timestamp', bigint, (c) => c.notNull())
        .execute(); // no foreign key: it would cost a lookup per stored envelope; removing a device empties its mailbox explicitly
      await db.schema.createIndex('envelopes_mailbox').on('envelopes').columns(['account_id', 'device_id', 'id']).execute();

      await db.schema
        .createTable('link_tokens')
        .addColumn('token_hash', binary, (c) => c.primaryKey())
        .addColumn('account_id', bigint, (c) => c.notNull().references('accounts.id').onDelete('cascade'))
        .addColumn('device_id', 'integer', (c) => c.notNull())
        .addColumn('expires_at', bigint, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('auth_challenges')
        .addColumn('challenge', binary, (c) => c.primaryKey())
        .addColumn('username', 'text', (c) => c.notNull())
        .addColumn('device_id', 'integer', (c) => c.notNull())
        .addColumn('expires_at', bigint, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('counters')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', bigint, (c) => c.notNull())
        .execute();
      await sql`insert into counters (name, value) values ('envelope_id', 0)`.execute(db);

      await db.schema
        .createTable('secrets')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', binary, (c) => c.notNull())
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of [
        'secrets',
        'counters',
        'auth_challenges',
        'link_tokens',
        'envelopes',
        'kyber_prekeys',
        'one_time_prekeys',
        'signed_prekeys',
        'devices',
        'accounts',
      ]) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}
