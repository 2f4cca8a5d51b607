/**
 * bench/protocol: @parley/protocol against libsignal-client 0.90 (test-only
 * AGPL peer, driven through its public API only), from one run, with the ratio
 * Parley ÷ libsignal for every figure.
 *
 *   npm run bench:protocol
 *
 * Both implementations are driven through the same `Peer` interface from
 * testing/peers.ts, each talking to itself (Parley↔Parley, libsignal↔libsignal),
 * on the fixed clock `NOW`. Parley runs on the node:crypto provider.
 *
 * Figures:
 * - session setup: fetch a bundle, processPreKeyBundle, encrypt the first
 *   message, decrypt it on the other side. Every peer is made (identity,
 *   signed, Kyber and one-time prekeys) before the clock starts.
 * - burst: on an answered session, 10,000 messages of 100 bytes one way;
 *   encrypt and decrypt timed separately.
 * - ping-pong: A → B, B → A, every message a DH ratchet step; per round trip.
 *
 * Fixed workloads are timed with performance.now() around whole loops, after a
 * warm-up on separate sessions. Each loop is cut into chunks and Parley's and
 * libsignal's chunks alternate, so both meet the same machine load; the whole
 * set runs ROUNDS times and figures are medians.
 *
 * libsignal↔libsignal sessions negotiate SPQR, so its figures include that
 * work; Parley does not speak SPQR yet.
 */
import { createNodeProvider } from '@parley/crypto/node';
import type { CiphertextMessage } from '@parley/protocol';

import { NOW, libsignalPeer, parleyPeer, type Peer } from '../../testing/peers.js';
import { formatMicros, printTable } from '../lib/measure.js';

const SETUPS = 100;
const SETUP_WARMUP = 20;
const BURST = 10_000;
const BURST_WARMUP = 500;
const ROUND_TRIPS = 500;
const ROUND_TRIP_WARMUP = 300;
const MESSAGE_BYTES = 100;
/** Timed loops run in chunks of this many operations, Parley's and libsignal's alternating. */
const SETUP_CHUNK = 10;
const BURST_CHUNK = 1_000;
const ROUND_TRIP_CHUNK = 50;
/** Every workload runs this many times; figures are medians. */
const ROUNDS = 3;

const GOAL = { burst: 0.7, pingPong: 0.7, setup: 1.0 } as const;

interface Implementation {
  /** A new device; key generation happens here, never inside a timed region. */
  readonly peer: (name: string, preKeyCount: number) => Promise<Peer>;
}

const provider = createNodeProvider();
const parley: Implementation = { peer: (name, count) => parleyPeer(provider, name, 1, count) };
const libsignal: Implementation = { peer: async (name, count) => libsignalPeer(name, 1, count) };

const PLAINTEXT = Uint8Array.from({ length: MESSAGE_BYTES }, (_, i) => (7 + i * 31) & 0xff);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function expectPlaintext(got: Uint8Array, want: Uint8Array, what: string): void {
  if (!sameBytes(got, want)) throw new Error(`${what}: decrypted bytes differ from what was sent`);
}

/** Bundle → processPreKeyBundle → first encrypt → decrypt by the receiver. The part that is timed. */
async function setUp(alice: Peer, bob: Peer): Promise<void> {
  const bundle = await bob.bundle({ withOneTimePreKey: true });
  await alice.startSession(bob, bundle);
  const first = await alice.encrypt(bob.address, PLAINTEXT);
  expectPlaintext(await bob.decrypt(alice.address, first), PLAINTEXT, 'setup');
}

/** A pair of new devices with a session both sides have used (Bob has answered). */
async function answeredSession(impl: Implementation, tag: string): Promise<{ alice: Peer; bob: Peer }> {
  const [alice, bob] = [await impl.peer(`alice-${tag}`, 1), await impl.peer(`bob-${tag}`, 1)];
  await setUp(alice, bob);
  expectPlaintext(await alice.decrypt(bob.address, await bob.encrypt(alice.address, PLAINTEXT)), PLAINTEXT, 'answer');
  return { alice, bob };
}

/**
 * A fixed workload cut into steps: `run(n)` does the next `n` operations and
 * returns the milliseconds they took, timed whole with performance.now().
 */
interface Workload {
  run(count: number): Promise<number>;
}

/**
 * Runs `total` operations of each implementation's workload in chunks, in the
 * order A B B A A B …, so that both see the same machine (other processes,
 * thermal state) over the same stretch of time. Returns µs per operation.
 */
async function interleaved(ours: Workload, theirs: Workload, total: number, chunk: number): Promise<[number, number]> {
  let [oursMs, theirsMs] = [0, 0];
  for (let done = 0, i = 0; done < total; done += chunk, i++) {
    const count = Math.min(chunk, total - done);
    if (i % 2 === 0) {
      oursMs += await ours.run(count);
      theirsMs += await theirs.run(count);
    } else {
      theirsMs += await theirs.run(count);
      oursMs += await ours.run(count);
    }
  }
  return [(oursMs * 1000) / total, (theirsMs * 1000) / total];
}

async function timed(count: number, operation: (i: number) => Promise<void>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < count; i++) await operation(i);
  return performance.now() - start;
}

/**
 * Session setups. One receiver holds a one-time prekey for every setup, and
 * each setup comes from a new sender, so no session record grows with the
 * count (archived sessions would otherwise pile up on both sides).
 */
async function setupWorkload(impl: Implementation): Promise<Workload> {
  const bob = await impl.peer('bob', SETUP_WARMUP + SETUPS);
  const senders: Peer[] = [];
  for (let i = 0; i < SETUP_WARMUP + SETUPS; i++) senders.push(await impl.peer(`alice-${i}`, 0));
  let next = 0;
  const setUpNext = () => setUp(senders[next++]!, bob);
  await timed(SETUP_WARMUP, setUpNext);
  return { run: (count) => timed(count, setUpNext) };
}

/** One way on an answered session: `encrypt` seals the next messages, `decrypt` opens them in order. */
async function burstWorkloads(impl: Implementation): Promise<{ encrypt: Workload; decrypt: Workload; check(): void }> {
  const warm = await answeredSession(impl, 'burst-warmup');
  for (let i = 0; i < BURST_WARMUP; i++) {
    expectPlaintext(await warm.bob.decrypt(warm.alice.address, await warm.alice.encrypt(warm.bob.address, PLAINTEXT)), PLAINTEXT, 'burst');
  }

  const { alice, bob } = await answeredSession(impl, 'burst');
  const sealed: CiphertextMessage[] = [];
  const opened: Uint8Array[] = [];
  return {
    encrypt: {
      run: (count) =>
        timed(count, async () => {
          sealed.push(await alice.encrypt(bob.address, PLAINTEXT));
        }),
    },
    decrypt: {
      run: (count) =>
        timed(count, async () => {
          opened.push(await bob.decrypt(alice.address, sealed[opened.length]!));
        }),
    },
    check() {
      if (opened.length !== BURST || sealed.some((m) => m.type !== 2)) throw new Error('burst: expected Whisper messages, all opened');
      for (const bytes of opened) expectPlaintext(bytes, PLAINTEXT, 'burst');
    },
  };
}

/** Round trips: every decrypt meets a new ratchet key and takes a DH ratchet step. */
async function pingPongWorkload(impl: Implementation): Promise<Workload> {
  const roundTrip = async (alice: Peer, bob: Peer) => {
    const ping = await bob.decrypt(alice.address, await alice.encrypt(bob.address, PLAINTEXT));
    expectPlaintext(await alice.decrypt(bob.address, await bob.encrypt(alice.address, ping)), PLAINTEXT, 'ping-pong');
  };
  const warm = await answeredSession(impl, 'ping-warmup');
  await timed(ROUND_TRIP_WARMUP, () => roundTrip(warm.alice, warm.bob));
  const { alice, bob } = await answeredSession(impl, 'ping');
  return { run: (count) => timed(count, () => roundTrip(alice, bob)) };
}

type FigureKey = 'setup' | 'burstEncrypt' | 'burstDecrypt' | 'pingPong';

const burstSize = `${BURST.toLocaleString('en')} × ${MESSAGE_BYTES} B`;
const figures: readonly { key: FigureKey; name: string; unit: string; goal: number }[] = [
  { key: 'setup', name: 'session setup', unit: `µs/setup, ${SETUPS} setups`, goal: GOAL.setup },
  { key: 'burstEncrypt', name: 'burst encrypt', unit: `µs/msg, ${burstSize}`, goal: GOAL.burst },
  { key: 'burstDecrypt', name: 'burst decrypt', unit: `µs/msg, ${burstSize}`, goal: GOAL.burst },
  { key: 'pingPong', name: 'ping-pong', unit: `µs/round trip, ${ROUND_TRIPS} round trips`, goal: GOAL.pingPong },
];

/** One round of every workload: [Parley, libsignal] µs per operation for each figure. */
async function round(): Promise<Record<FigureKey, [number, number]>> {
  const setup = await interleaved(await setupWorkload(parley), await setupWorkload(libsignal), SETUPS, SETUP_CHUNK);
  const [ours, theirs] = [await burstWorkloads(parley), await burstWorkloads(libsignal)];
  const burstEncrypt = await interleaved(ours.encrypt, theirs.encrypt, BURST, BURST_CHUNK);
  const burstDecrypt = await interleaved(ours.decrypt, theirs.decrypt, BURST, BURST_CHUNK);
  ours.check();
  theirs.check();
  const pingPong = await interleaved(await pingPongWorkload(parley), await pingPongWorkload(libsignal), ROUND_TRIPS, ROUND_TRIP_CHUNK);
  return { setup, burstEncrypt, burstDecrypt, pingPong };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

console.log(`bench/protocol on Node ${process.version}: @parley/protocol (node:crypto provider) vs libsignal-client 0.90.0, in one run`);
console.log(`each implementation talks to itself, on the fixed clock NOW = ${new Date(NOW).toISOString().slice(0, 10)} (testing/peers.ts)`);
console.log(
  `setup: every bundle carries a one-time prekey (one receiver made with preKeyCount = ${SETUP_WARMUP + SETUPS}, a new sender per setup, ` +
    'all keys made before timing)',
);
console.log(
  `warm-up: ${SETUP_WARMUP} setups, ${BURST_WARMUP} burst messages, ${ROUND_TRIP_WARMUP} round trips on separate sessions; ` +
    `timed loops alternate Parley and libsignal in chunks; figures are medians of ${ROUNDS} rounds`,
);
console.log('note: libsignal↔libsignal negotiates SPQR (a pq_ratchet field in every message); Parley does not speak SPQR yet\n');

const rounds: Record<FigureKey, [number, number]>[] = [];
for (let i = 0; i < ROUNDS; i++) rounds.push(await round());

const rows: string[][] = [];
const verdicts: string[] = [];
for (const figure of figures) {
  const ours = median(rounds.map((r) => r[figure.key][0]));
  const theirs = median(rounds.map((r) => r[figure.key][1]));
  const ratio = ours / theirs;
  rows.push([`${figure.name} (${figure.unit})`, formatMicros(ours), formatMicros(theirs), `${ratio.toFixed(2)}×`]);
  verdicts.push(`  ${figure.name}: ${ratio.toFixed(2)}× (goal ≤ ${figure.goal.toFixed(2)}×) — ${ratio <= figure.goal ? 'met' : 'NOT met'}`);
}
printTable(['figure', 'Parley', 'libsignal', 'Parley÷libsignal'], rows);
console.log(`\ngoal: burst and ping-pong ≤ ${GOAL.burst.toFixed(2)}×, setup ≤ ${GOAL.setup.toFixed(2)}×`);
for (const verdict of verdicts) console.log(verdict);
