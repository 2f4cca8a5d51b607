/**
 * The numbered migrations. Both engines run the same list; a migration that
 * needs engine-specific SQL takes the engine as an argument. Never edit a
 * migration that has shipped: add the next number.
 */
import type { Migration, MigrationProvider } from 'kysely';

import type { Engine } from '../database.js';
import { initial } from './0001_initial.js';

export function migrations(engine: Engine): Record<string, Migration> {
  return {
    '0001_initial': initial(engine),
  };
}

export function migrationProvider(engine: Engine): MigrationProvider {
  return { getMigrations: async () => migrations(engine) };
}
