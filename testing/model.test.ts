/**
 * A model-based test of the whole stack (fast-check): random schedules of
 * send, hold, deliver, drop, reconnect, server restart (SIGKILL) and device
 * snapshot and restore, across three people with two devices each, on a real
 * server process behind the malicious-server proxy (modelWorld.ts). After each
 * schedule the stack is healed, and every device must show every
 * acknowledged text exactly once, in its conversation (the recipient's
 * devices as received, the sender's as sent), no text nobody sent, no notice,
 * and nothing undecryptable (SECURITY-TESTS rows 7, 16, 19 and 26).
 *
 * Sends do not wait for the server's answer, so two people's first messages
 * to each other cross (row 16), and a restart or a restore can land mid-send;
 * only texts whose sendText resolved count as acknowledged. A device restored
 * from a snapshot keeps what the snapshot held and must show everything sent
 * after the restore; what it received or sent between snapshot and restore is
 * gone from it by design (the server deleted it once acknowledged), so it may
 * show such a text at most once.
 *
 * Undecryptable messages are counted with a grace of zero once the stack is
 * quiet: stricter than UNDECRYPTABLE_GRACE_MS, which is what an app shows.
 * Not after a restore, though: a receipt sent to or from the restored device
 * in a session the restore made stale fails to decrypt, and its sender keeps
 * nothing to send again (recovery.ts resends texts only), so the count stays
 * above zero by design; every text must still arrive (modelWorld.ts, `#restored`).
 *
 * CI runs a few schedules from a fixed seed. PARLEY_MODEL_RUNS runs more,
 * PARLEY_MODEL_SEED another seed; a failure prints the seed, the path and the
 * shrunk schedule, and PARLEY_MODEL_SEED, PARLEY_MODEL_PATH and
 * PARLEY_MODEL_REPLAY (the printed replayPath) replay exactly that schedule.
 * PARLEY_MODEL_ENGINE=postgres runs the server on PostgreSQL.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEVICES, label, PEOPLE, personOf, RESTORABLE, Stack, World, type DeviceIndex, type Person } from './modelWorld.js';

const env = process.env;
const RUNS = Number(env['PARLEY_MODEL_RUNS'] ?? 6);
const SEED = Number(env['PARLEY_MODEL_SEED'] ?? 20_261_127);
const ENGINE = env['PARLEY_MODEL_ENGINE'] === 'postgres' ? 'postgres' : 'sqlite';
/** Steps per schedule at most: enough for every kind of fault to meet the others, few enough for CI. */
const MAX_STEPS = 24;
/** Runs stop (and a failure's shrinking with them, keeping what it has) after this long, so that a failure is a report, not a timeout. */
const TIME_LIMIT_MS = 4 * 60_000;

/** Every step makes sense in every state of the world: the schedule needs no model beyond the world's own. */
type Model = object;
type Step = fc.AsyncCommand<Model, World>;

/** What the runs exercised, so that a generator gone quiet fails the test instead of passing it. */
const exercised = { sends: 0, crossings: 0, drops: 0, restarts: 0, restores: 0 };

class Send implements Step {
  constructor(readonly from: DeviceIndex, readonly to: Person) {}
  check = () => true;
  async run(_: Model, world: World) {
    exercised.sends++;
    world.send(this.from, this.to);
  }
  toString = () => `send(${label(this.from)}→${PEOPLE[this.to]})`;
}

/** Two people send to each other at once: with no session yet, both start one (row 16). */
class Cross implements Step {
  constructor(readonly a: DeviceIndex, readonly b: DeviceIndex) {}
  check = () => true;
  async run(_: Model, world: World) {
    exercised.crossings++;
    world.send(this.a, personOf(this.b));
    world.send(this.b, personOf(this.a));
  }
  toString = () => `cross(${label(this.a)}⇄${label(this.b)})`;
}

/** The proxy holds the device's envelopes from now on. */
class Hold implements Step {
  constructor(readonly device: DeviceIndex) {}
  check = () => true;
  async run(_: Model, world: World) {
    world.stack.mailroom.hold(world.nameOf(this.device));
  }
  toString = () => `hold(${label(this.device)})`;
}

/** The proxy lets what it held for the device through, and passes what comes next. */
class Deliver implements Step {
  constructor(readonly device: DeviceIndex, readonly order: 'in order' | 'reversed') {}
  check = () => true;
  async run(_: Model, world: World) {
    world.stack.mailroom.deliver(world.nameOf(this.device), this.order);
  }
  toString = () => `deliver(${label(this.device)}, ${this.order})`;
}

/** The proxy throws away what it held for the device, and what comes next, until a deliver (the server pushes it all again on the next connection). */
class Drop implements Step {
  constructor(readonly device: DeviceIndex) {}
  check = () => true;
  async run(_: Model, world: World) {
    exercised.drops++;
    world.stack.mailroom.drop(world.nameOf(this.device));
  }
  toString = () => `drop(${label(this.device)})`;
}

/** Every send settles and every device the proxy passes drains its mailbox: sessions form before the next fault. */
class Settle implements Step {
  check = () => true;
  async run(_: Model, world: World) {
    await world.settle();
  }
  toString = () => 'settle';
}

class Reconnect implements Step {
  constructor(readonly device: DeviceIndex) {}
  check = () => true;
  async run(_: Model, world: World) {
    world.reconnect(this.device);
  }
  toString = () => `reconnect(${label(this.device)})`;
}

class RestartServer implements Step {
  check = () => true;
  async run(_: Model, world: World) {
    exercised.restarts++;
    await world.stack.restartServer();
  }
  toString = () => 'restartServer';
}

class Snapshot implements Step {
  constructor(readonly device: DeviceIndex) {}
  check = () => true;
  async run(_: Model, world: World) {
    await world.snapshot(this.device);
  }
  toString = () => `snapshot(${label(this.device)})`;
}

class Restore implements Step {
  constructor(readonly device: DeviceIndex) {}
  check = () => true;
  async run(_: Model, world: World) {
    exercised.restores++;
    await world.restore(this.device);
  }
  toString = () => `restore(${label(this.device)})`;
}

const device = fc.constantFrom(...DEVICES);
const restorable = fc.constantFrom(...RESTORABLE);
/** Another person than `from`'s: one or two places on. */
const otherPerson = (from: DeviceIndex, offset: 1 | 2) => ((personOf(from) + offset) % 3) as Person;

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(device, fc.constantFrom<1 | 2>(1, 2)).map(([from, offset]) => new Send(from, otherPerson(from, offset))) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(device, fc.constantFrom<1 | 2>(1, 2), fc.constantFrom(0, 1))
      .map(([a, offset, slot]) => new Cross(a, (otherPerson(a, offset) * 2 + slot) as DeviceIndex)),
  },
  { weight: 2, arbitrary: device.map((d) => new Hold(d)) },
  { weight: 2, arbitrary: fc.tuple(device, fc.constantFrom('in order' as const, 'reversed' as const)).map(([d, order]) => new Deliver(d, order)) },
  { weight: 1, arbitrary: device.map((d) => new Drop(d)) },
  { weight: 1, arbitrary: device.map((d) => new Reconnect(d)) },
  { weight: 1, arbitrary: fc.constant(new RestartServer()) },
  { weight: 2, arbitrary: fc.constant(new Settle()) },
  { weight: 2, arbitrary: restorable.map((d) => new Snapshot(d)) },
  { weight: 2, arbitrary: restorable.map((d) => new Restore(d)) },
);

/**
 * Runs one schedule on a new world, heals it, and throws the violations found
 * (with what became of each send). Resolves with how many envelopes the
 * devices failed to decrypt on the way, every one of them recovered.
 */
async function runSchedule(stack: Stack, steps: Iterable<Step>): Promise<number> {
  const world = await World.create(stack);
  try {
    await fc.asyncModelRun(() => ({ model: {}, real: world }), steps);
    await world.heal();
    const violations = await world.violations();
    if (violations.length > 0) throw new Error(`${violations.join('\n')}\nsends: ${world.summary()}`);
    return world.decryptionFailures;
  } finally {
    await world.close();
  }
}

let stack: Stack;

beforeAll(async () => {
  stack = await Stack.start(ENGINE);
});

afterAll(async () => {
  await stack.close();
});

describe(`the whole stack as a model (${ENGINE === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`, () => {
  it(
    'model: random schedules of send, drop, reconnect, restart and restore across 3 users × 2 devices show every acknowledged message exactly once, with nothing undecryptable (rows 7, 16, 19, 26)',
    async () => {
      const replayPath = env['PARLEY_MODEL_REPLAY'];
      const path = env['PARLEY_MODEL_PATH'];
      await fc.assert(
        fc.asyncProperty(fc.commands([step], { maxCommands: MAX_STEPS, size: 'max', ...(replayPath === undefined ? {} : { replayPath }) }), async (schedule) => {
          await runSchedule(stack, schedule);
        }),
        { seed: SEED, numRuns: RUNS, ...(path === undefined ? {} : { path, endOnFailure: true }), plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] },
      );
      if (RUNS >= 4 && path === undefined) {
        expect(exercised.sends).toBeGreaterThan(20);
        // Whether a restore makes a text fail to decrypt depends on timing, so recovery is not required here: the regressions below carry it.
        for (const kind of ['crossings', 'drops', 'restarts', 'restores'] as const) expect(exercised[kind], `schedules with ${kind}`).toBeGreaterThan(0);
      }
    },
    TIME_LIMIT_MS + 60_000,
  );

  it('regression: a device restored from a snapshot reuses a message key for its next text, which every receiver gets through resend, shown once (rows 15, 19, 26)', async () => {
    const [b1, alice] = [2, 0] as const;
    const recovered = await runSchedule(stack, [new Send(b1, alice), new Settle(), new Snapshot(b1), new Send(b1, alice), new Settle(), new Restore(b1), new Send(b1, alice)]);
    // Before the fix, alice's two devices and bob's other one took the reused counter for a replay, and dropped the text unseen.
    expect(recovered).toBeGreaterThanOrEqual(3);
  });

});
