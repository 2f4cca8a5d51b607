/**
 * The KeyValueStore contract, held by every Node engine alike: random writes
 * and deletes, checked after each batch against a plain sorted map, read by
 * key and by prefix, in order and reversed, with and without a limit. (The
 * IndexedDB store runs in a browser: packages/client/src/web.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { SqliteStore } from '../node/sqliteStore.js';
import type { KeyValueStore, Write } from './kv.js';
import { MemoryStore } from './memory.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const engines: { name: string; open: () => KeyValueStore }[] = [
  { name: 'MemoryStore', open: () => new MemoryStore() },
  {
    name: 'SqliteStore',
    open: () => {
      const dir = mkdtempSync(join(tmpdir(), 'parley-store-'));
      dirs.push(dir);
      return new SqliteStore(join(dir, 'store.db'));
    },
  },
];

// Few namespaces and a small key alphabet, so that keys share prefixes and collide often.
const ns = fc.constantFrom('message', 'session');
const key = fc.string({ unit: fc.constantFrom('a', 'b', '.', '/', '0', '9'), maxLength: 5 });
const write: fc.Arbitrary<Write> = fc.record({ ns, key, value: fc.option(fc.uint8Array({ maxLength: 4 }), { nil: undefined }) });
const query = fc.record({ ns, prefix: fc.string({ unit: fc.constantFrom('a', 'b', '.'), maxLength: 2 }), limit: fc.option(fc.nat({ max: 4 }), { nil: undefined }), reverse: fc.boolean() });

/** What `list` must answer, from the reference map. */
function expected(reference: Map<string, Uint8Array>, q: { ns: string; prefix: string; limit: number | undefined; reverse: boolean }) {
  const keys = [...reference.keys()]
    .filter((k) => k.startsWith(`${q.ns}\u0000${q.prefix}`))
    .map((k) => k.slice(q.ns.length + 1))
    .sort();
  if (q.reverse) keys.reverse();
  return keys.slice(0, q.limit ?? keys.length).map((k) => [k, reference.get(`${q.ns}\u0000${k}`)]);
}

describe.each(engines)('$name', ({ open }) => {
  it('answers get and list exactly as a sorted map would, after any writes and deletes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.array(write, { maxLength: 6 }), fc.array(query, { minLength: 1, maxLength: 3 })), { minLength: 1, maxLength: 8 }), async (steps) => {
        const store = open();
        const reference = new Map<string, Uint8Array>();
        try {
          for (const [writes, queries] of steps) {
            await store.write(writes);
            for (const w of writes) {
              if (w.value === undefined) reference.delete(`${w.ns}\u0000${w.key}`);
              else reference.set(`${w.ns}\u0000${w.key}`, w.value);
            }
            for (const q of queries) {
              const options = { reverse: q.reverse, ...(q.limit === undefined ? {} : { limit: q.limit }) };
              expect(await store.list(q.ns, q.prefix, options)).toEqual(expected(reference, q));
            }
            for (const w of writes) expect(await store.get(w.ns, w.key)).toEqual(reference.get(`${w.ns}\u0000${w.key}`));
          }
        } finally {
          await store.close();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('keeps its own copy of what it is given and of what it gives out', async () => {
    const store = open();
    const value = Uint8Array.of(1, 2, 3);
    await store.write([{ ns: 'n', key: 'k', value }]);
    value[0] = 9;
    const read = (await store.get('n', 'k'))!;
    read[1] = 9;
    (await store.list('n', ''))[0]![1][2] = 9;
    expect(await store.get('n', 'k')).toEqual(Uint8Array.of(1, 2, 3));
    await store.close();
  });
});
