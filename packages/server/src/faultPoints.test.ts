/**
 * The server killed at each named crash point (faultPoints.ts) while real
 * clients talk through it (SECURITY-TESTS rows 19, 20 and 26): Alice sends
 * Bob a stream of texts, the server SIGKILLs itself at the point, the test
 * restarts it on the same storage and port, and the clients reconnect by
 * themselves. What Alice was told is stored must be shown to Bob exactly
 * once, no text may stay "sending", and nothing may stay undecryptable.
 *
 * The points are armed through the environment, as an operator never would
 * by accident: both variables are needed, and the server says so loudly.
 */
import type { ParleyClient } from '@parley/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Cast, eventually, texts, WAIT_MS } from '../../../testing/clients.js';
import { TestAccount, to } from '../../../testing/device.js';
import { crashEnv, restart, within } from '../../../testing/faults.js';
import { engineCases, freshStorage, spawnServer, useServer } from '../../../testing/server.js';
import type { CrashPlan } from './faultPoints.js';

/** Texts per stream, and how many are in flight at once (so that a crash meets several sends at different stages). */
const TEXTS = 24;
const LANES = 3;

/**
 * Each point, and the time it is reached on which the server dies: far enough
 * into the stream that sends, pushes and acks are all under way, early
 * enough that every stream reaches it (counts include Bob's receipts, which
 * are sends too).
 */
const CRASHES: readonly CrashPlan[] = [
  { point: 'after-receive', nth: 8 },
  { point: 'mid-commit', nth: 6 },
  { point: 'after-store', nth: 6 },
  { point: 'after-push', nth: 6 },
  { point: 'before-ack', nth: 6 },
];

/** How long the stream may take to settle after the restart, and the whole test: each wait fails with its own message first. */
const SETTLE_MS = 3 * WAIT_MS;
const TEST_MS = SETTLE_MS + 4 * WAIT_MS;

type Outcome = { readonly text: string; readonly sent: true } | { readonly text: string; readonly sent: false; readonly error: string };

/** Sends `all` from `sender` to `peer`, `LANES` at a time, and resolves with what became of each. */
async function sendAll(sender: ParleyClient, peer: string, all: readonly string[]): Promise<Outcome[]> {
  const queue = [...all];
  const outcomes: Outcome[] = [];
  const lane = async () => {
    for (let text = queue.shift(); text !== undefined; text = queue.shift()) {
      outcomes.push(
        await sender.sendText(peer, text).then(
          () => ({ text, sent: true as const }),
          (error: unknown) => ({ text, sent: false as const, error: String(error) }),
        ),
      );
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  return outcomes;
}

/** The texts shown more than once. */
const repeated = (shown: readonly string[]) => shown.filter((text, i) => shown.indexOf(text) !== i);

describe.each(engineCases)('crash points on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase);
  const cast = new Cast(() => suite.server.url);
  let alice: ParleyClient;
  let bob: ParleyClient;

  // One conversation lives through every crash, as a real one would.
  beforeAll(async () => {
    if (!available) return;
    alice = await cast.person('alice');
    bob = await cast.person('bob');
  });
  afterAll(async () => {
    await cast.close();
  });

  for (const plan of CRASHES) {
    it.skipIf(!available)(`SIGKILL ${plan.point}: every acknowledged text is shown exactly once, none stays sending, none is undecryptable`, async () => {
      await suite.server.stop();
      suite.server = await restart(suite.server, suite.storage, [], crashEnv(plan));
      expect(suite.server.output()).toContain('FAULT INJECTION ARMED');

      const stream = Array.from({ length: TEXTS }, (_, i) => `${plan.point} ${i}`);
      const sending = sendAll(alice, bob.username, stream);
      // The point must be reached: a stream that never gets there tests nothing.
      expect(await within(suite.server.exited, WAIT_MS, `the server to kill itself at ${plan.point}`)).toBe('SIGKILL');
      suite.server = await restart(suite.server, suite.storage);

      // The SDK retries a send whose connection died, once it is back: every text ends acknowledged.
      const outcomes = await within(sending, SETTLE_MS, 'every send to settle');
      expect(outcomes.filter((o) => !o.sent)).toEqual([]);
      const shown = async () => (await texts(bob, alice.username)).filter((text) => text.startsWith(`${plan.point} `));
      await eventually(`Bob shows all ${TEXTS} texts sent around the crash`, async () => new Set(await shown()).size === TEXTS);
      expect(repeated(await shown())).toEqual([]);
      expect([...(await shown())].sort()).toEqual([...stream].sort());
      const mine = (await alice.conversation(bob.username, 1000)).filter((m) => m.body.startsWith(`${plan.point} `));
      expect(mine.filter((m) => m.status === 'sending' || m.status === 'failed')).toEqual([]);
      for (const client of [alice, bob]) {
        await eventually(`${client.username} has nothing undecryptable`, async () => (await client.undecryptableCount(0)) === 0);
      }
    }, TEST_MS);
  }
});

describe('crash points are armed only on purpose', () => {
  it('PARLEY_FAULT_CRASH_AT alone is ignored with a warning; with PARLEY_FAULT_INJECTION=1 a bad plan stops the start', async () => {
    const storage = await freshStorage('sqlite');
    try {
      const ignored = await spawnServer(storage, [], [], { PARLEY_FAULT_CRASH_AT: 'after-receive:1' });
      expect(ignored.output()).toContain('PARLEY_FAULT_CRASH_AT=after-receive:1 is IGNORED');
      const alice = await TestAccount.register(ignored.url, 'gate_alice');
      const bob = await TestAccount.register(ignored.url, 'gate_bob');
      const sender = await alice.devices[0]!.connect(ignored.wsUrl);
      expect((await sender.request([to(bob, () => Uint8Array.of(1))])).kind).toBe('sent');
      await sender.close();
      expect(await ignored.stop()).toBe(0);
      const misspelt = { ...crashEnv({ point: 'after-receive', nth: 1 }), PARLEY_FAULT_CRASH_AT: 'after-lunch' };
      await expect(spawnServer(storage, [], [], misspelt)).rejects.toThrow(/exited \(2\)[\s\S]*PARLEY_FAULT_CRASH_AT is <point>\[:<nth>\]/);
    } finally {
      await storage.drop();
    }
  });
});
