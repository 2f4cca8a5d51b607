/**
 * bench/groups: group messaging with sender keys, for groups of N members with
 * two devices each, from one run, every Parley figure beside its peer's:
 *
 *   npm run bench:groups --workspace bench [-- --members 10,100,1000 --engines sqlite,postgres --quick]
 *
 * 1. sender: µs per groupEncrypt, Parley vs libsignal-client 0.90; and the
 *    sender's whole cost of a steady-state group message (groupEncrypt +
 *    encoding the multicast frame for 2N − 1 devices) vs a one-to-one message
 *    (encryptMessage to the peer's two devices + encoding its `send` frame).
 * 2. server fan-out through a real `parley-server` (SQLite, and PostgreSQL if
 *    reachable; fresh storage each), all 2N devices connected: latency of one
 *    message until every device has acked it, and envelopes/s for a stream;
 *    multicast vs the same copies as one `send` per member account.
 * 3. recipient: µs per groupDecrypt, Parley vs libsignal.
 * 4. re-key after a removal: a fresh sender key to every remaining device over
 *    one-to-one sessions, then the group message, until every device has
 *    decrypted both (rekey.ts).
 *
 * One server per engine and one set of members serve every N (groups are the
 * first N members; member 0's first device sends), since nothing of one
 * measurement stays on the server for the next (every mailbox is emptied in
 * between). Progress goes to stderr.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';

import { createNodeProvider } from '@parley/crypto/node';
import { createSenderKeyDistributionMessage, groupEncrypt } from '@parley/protocol';

import { engineCases, freshStorage, spawnServer, type EngineName } from '../../testing/server.js';
import { formatMicros, printTable } from '../lib/measure.js';
import { groupCipherFigures, groupRecipients, senderCost, type CipherOptions } from './cipher.js';
import { fanoutLatency, fanoutStream, type FanoutKind, type StreamResult } from './fanout.js';
import type { Member } from './members.js';
import { rekey } from './rekey.js';
import { setUpMembers } from './setup.js';
import { GroupWire } from './wire.js';

const GOAL = { senderCostRatio: 2, rekeyMs: 2_000, atMembers: 1_000 } as const;
const MESSAGE_BYTES = 100;

const { values: options } = parseArgs({
  options: {
    members: { type: 'string', default: '10,100,1000' },
    engines: { type: 'string', default: 'sqlite,postgres' },
    quick: { type: 'boolean', default: false },
  },
});
const sizes = options.members.split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 3 || n > 1_000)) throw new Error('--members takes sizes from 3 to 1,000, comma-separated');
const engines = options.engines.split(',') as EngineName[];
const quick = options.quick;

/** Per-size work, full and --quick. */
const RUN = quick
  ? { latencyReps: 3, streamEnvelopes: 4_000, streamRounds: 1, rekeyReps: 1, cipher: { budgetMs: 150, decrypts: 1_000, rounds: 3 } }
  : { latencyReps: 7, streamEnvelopes: 20_000, streamRounds: 2, rekeyReps: 3, cipher: { budgetMs: 400, decrypts: 5_000, rounds: 5 } };

const plaintext = Uint8Array.from({ length: MESSAGE_BYTES }, (_, i) => (7 + i * 31) & 0xff);
const cipherOptions: CipherOptions = { plaintext, ...RUN.cipher };
const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const ms = (value: number) => `${value.toFixed(1)} ms`;
const perSecond = (value: number) => `${Math.round(value).toLocaleString('en')}/s`;
const ratio = (ours: number, theirs: number) => `${(ours / theirs).toFixed(2)}×`;
const progress = (line: string) => process.stderr.write(`${line}\n`);

const cpu = cpus();
console.log(`bench/groups on ${cpu[0]?.model ?? 'unknown CPU'} (${cpu.length} cores), Node ${process.version}: sender keys, Parley vs libsignal-client 0.90.0 and multicast vs per-account sends, in one run`);
console.log(
  `groups of ${sizes.map((n) => n.toLocaleString('en')).join(', ')} members × 2 devices; ${MESSAGE_BYTES}-byte messages; ` +
    `${quick ? '--quick: fewer repetitions, ' : ''}medians of the repetitions`,
);
console.log();

type Row = [figure: string, members: string, parley: string, peer: string, peerIs: string, ratio: string];
const rows: Row[] = [];
const verdicts: string[] = [];
const notes: string[] = [];

// 1 and 3: the group cipher, and the sender's whole cost per message.
progress('group cipher: Parley vs libsignal');
const cipher = await groupCipherFigures(cipherOptions);
rows.push(['groupEncrypt, µs/msg', 'any', formatMicros(cipher.encrypt[0]), formatMicros(cipher.encrypt[1]), 'libsignal', ratio(cipher.encrypt[0], cipher.encrypt[1])]);
rows.push(['groupDecrypt, µs/msg', 'any', formatMicros(cipher.decrypt[0]), formatMicros(cipher.decrypt[1]), 'libsignal', ratio(cipher.decrypt[0], cipher.decrypt[1])]);
const costs = new Map<number, [number, number]>();
for (const n of sizes) {
  progress(`sender's cost of a group message to ${n} members vs a one-to-one message`);
  const usernames = Array.from({ length: n }, (_, i) => `gxxxxxx_m${i}`);
  const cost = await senderCost(groupRecipients(usernames, () => 0x2a2a), cipherOptions);
  costs.set(n, cost);
  rows.push([
    'sender cost: groupEncrypt + multicast frame vs 1:1 (encrypt ×2 + send frame)',
    n.toLocaleString('en'),
    formatMicros(cost[0]),
    formatMicros(cost[1]),
    'one-to-one',
    ratio(cost[0], cost[1]),
  ]);
}

// 2 and 4: through a real server.
const provider = createNodeProvider();
const maxMembers = Math.max(...sizes);
const rekeyResults = new Map<string, number>();
for (const engine of engines) {
  const label = engine === 'sqlite' ? 'SQLite' : 'PostgreSQL';
  if (engineCases.find((c) => c.engine === engine)?.available !== true) {
    console.log(`${label}: SKIPPED (unreachable)`);
    continue;
  }
  progress(`${label}: a fresh server, ${maxMembers} members × 2 devices`);
  const storage = await freshStorage(engine);
  const server = await spawnServer(storage, ['--trust-proxy', '127.0.0.1']);
  let members: Member[] = [];
  try {
    members = await setUpMembers(server, maxMembers);
    const wire = new GroupWire(members);
    const sender = wire.sender;
    const fanoutDistribution = crypto.randomUUID();
    await createSenderKeyDistributionMessage(provider, sender.senderKeys, sender.address, fanoutDistribution);
    const seal = async () => (await groupEncrypt(provider, sender.senderKeys, sender.address, fanoutDistribution, plaintext)).serialized;

    for (const n of sizes) {
      const group = members.slice(0, n);
      const recipients = groupRecipients(
        group.map((m) => m.username),
        (username, deviceId) => group.find((m) => m.username === username)!.devices[deviceId - 1]!.registrationId,
      );
      const devices = group.flatMap((m) => m.devices).filter((d) => d !== sender);
      const kinds: FanoutKind[] = ['multicast', 'send'];

      progress(`${label}, ${n} members: fan-out latency`);
      const latency = new Map<FanoutKind, number[]>(kinds.map((k) => [k, []]));
      for (let rep = 0; rep < RUN.latencyReps; rep++) {
        for (const kind of rep % 2 === 0 ? kinds : [...kinds].reverse()) {
          latency.get(kind)!.push(await fanoutLatency(wire, server.url, kind, await seal(), recipients, devices));
        }
      }
      progress(`${label}, ${n} members: fan-out stream`);
      const count = Math.max(3, Math.ceil(RUN.streamEnvelopes / devices.length));
      const streams = new Map<FanoutKind, StreamResult[]>(kinds.map((k) => [k, []]));
      for (let rep = 0; rep < RUN.streamRounds; rep++) {
        for (const kind of rep % 2 === 0 ? kinds : [...kinds].reverse()) {
          const bodies = [];
          for (let i = 0; i < count; i++) bodies.push(await seal());
          streams.get(kind)!.push(await fanoutStream(wire, server.url, kind, bodies, recipients, devices));
        }
      }
      const sendLatency = median(latency.get('send')!);
      const multicastLatency = median(latency.get('multicast')!);
      const sendRate = median(streams.get('send')!.map((s) => s.envelopesPerSecond));
      const multicastRate = median(streams.get('multicast')!.map((s) => s.envelopesPerSecond));
      const sendCpu = median(streams.get('send')!.map((s) => s.serverCpuPerEnvelopeUs));
      const multicastCpu = median(streams.get('multicast')!.map((s) => s.serverCpuPerEnvelopeUs));
      const peerIs = `${n} sends`;
      const size = n.toLocaleString('en');
      rows.push([`fan-out ${label}: one message until all ${devices.length} devices acked`, size, ms(multicastLatency), ms(sendLatency), peerIs, ratio(multicastLatency, sendLatency)]);
      rows.push([`fan-out ${label}: envelopes/s, ${count} messages back to back`, size, perSecond(multicastRate), perSecond(sendRate), peerIs, ratio(multicastRate, sendRate)]);
      rows.push([`fan-out ${label}: server CPU µs per envelope (stream)`, size, multicastCpu.toFixed(0), sendCpu.toFixed(0), peerIs, ratio(multicastCpu, sendCpu)]);

      progress(`${label}, ${n} members: re-key after a removal`);
      const rekeys: number[] = [];
      for (let rep = 0; rep < RUN.rekeyReps; rep++) {
        // Member n − 1 − rep leaves: the group shrinks by one each repetition.
        // A different member is removed each time, so every repetition re-keys n − 1 members.
        const remaining = group.filter((_, i) => i !== n - 1 - rep);
        rekeys.push(await rekey(wire, server.url, remaining, plaintext));
      }
      const rekeyMs = median(rekeys);
      rekeyResults.set(`${label}/${n}`, rekeyMs);
      rows.push([
        `re-key ${label}: key 1:1 to ${2 * (n - 1) - 1} devices, then the message`,
        `${size} − 1`,
        ms(rekeyMs),
        ms(GOAL.rekeyMs),
        'goal',
        ratio(rekeyMs, GOAL.rekeyMs),
      ]);
    }
    if (wire.duplicates > 0) notes.push(`${label}: the server pushed ${wire.duplicates} envelopes a second time on the same live connection (acknowledged again, not counted)`);
  } finally {
    for (const device of members.flatMap((m) => m.devices)) {
      device.socket?.removeAllListeners('close');
      device.socket?.close(1000);
    }
    await server.stop();
    await storage.drop();
  }
}

console.log();
printTable(['figure', 'members', 'Parley', 'peer', 'peer is', 'Parley÷peer'], rows);

const atGoal = costs.get(GOAL.atMembers);
if (atGoal === undefined) verdicts.push(`  sender cost at ${GOAL.atMembers} members ≤ ${GOAL.senderCostRatio}× one-to-one: not measured (no --members ${GOAL.atMembers})`);
else {
  const r = atGoal[0] / atGoal[1];
  verdicts.push(`  sender cost at ${GOAL.atMembers} members: ${r.toFixed(2)}× one-to-one (goal ≤ ${GOAL.senderCostRatio}×) — ${r <= GOAL.senderCostRatio ? 'met' : 'NOT met'}`);
}
for (const engine of engines) {
  const label = engine === 'sqlite' ? 'SQLite' : 'PostgreSQL';
  const value = rekeyResults.get(`${label}/${GOAL.atMembers}`);
  verdicts.push(
    value === undefined
      ? `  re-key at ${GOAL.atMembers} members on ${label} ≤ ${GOAL.rekeyMs} ms: not measured`
      : `  re-key at ${GOAL.atMembers} members on ${label}: ${ms(value)} (goal ≤ ${GOAL.rekeyMs} ms) — ${value <= GOAL.rekeyMs ? 'met' : 'NOT met'}`,
  );
}
if (notes.length > 0) console.log(`\nnotes:\n${notes.map((n) => `  ${n}`).join('\n')}`);
console.log('\ngoals:');
for (const verdict of verdicts) console.log(verdict);
