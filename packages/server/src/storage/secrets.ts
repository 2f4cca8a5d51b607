/** The server's own secrets, created on first start: the key that signs connection tokens. */
import type { Kysely } from 'kysely';

import { blob } from './database.js';
import type { Schema } from './schema.js';

/**
 * The secret named `name`, created from `create()` if there is none yet. Every
 * node of a cluster reads the same one: the first writer wins.
 */
export async function loadSecret(db: Kysely<Schema>, name: string, create: () => Uint8Array): Promise<Uint8Array> {
  await db
    .insertInto('secrets')
    .values({ name, value: blob(create()) })
    .onConflict((c) => c.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return new Uint8Array(row.value);
}
