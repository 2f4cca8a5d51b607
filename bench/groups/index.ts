/**
 * bench/groups: group messaging with sender keys, for groups of N members with
 * two devices each, from one run, every Parley figure beside its peer's:
 *
 *   npm run bench:groups --workspace bench [-- --members 10,100,1000 --engines sqlite,postgres --quick]
 *
 * As a part of the suite (bench/run.ts) it returns its Section; --quick keeps to groups of 10 and 100 on SQLite.
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
import { parseArgs } from 'node:util';

import { createNodeProvider } from '@parley/crypto/node';
import { createSenderKeyDistributionMessage, groupEncrypt } from '@parley/protocol';

import { engineCases, freshStorage, spawnServer, type EngineName } from '../../testing/server.js';
import { formatMicros } from '../lib/measure.js';
import { runPart, type Goal, type Part, type Series } from '../lib/report.js';
import { groupCipherFigures, groupRecipients, senderCost, type CipherOptions } from './cipher.js';
import { fanoutLatency, fanoutStream, type FanoutKind, type StreamResult } from './fanout.js';
import type { Member } from './members.js';
import { rekey } from './rekey.js';
import { setUpMembers } from './setup.js';
import { GroupWire } from './wire.js';

const GOAL = { senderCostRatio: 2, rekeyMs: 2_000, atMembers: 1_000 } as const;
const MESSAGE_BYTES = 100;

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const ms = (value: number) => `${value.toFixed(1)} ms`;
const perSecond = (value: number) => `${Math.round(value).toLocaleString('en')}/s`;
const ratio = (ours: number, theirs: number) => `${(ours / theirs).toFixed(2)}×`;
const progress = (line: string) => process.stderr.write(`${line}\n`);
const labelOf = (engine: EngineName) => (engine === 'sqlite' ? 'SQLite' : 'PostgreSQL');

export const part: Part = async ({ quick, argv }) => {
  const { values: options } = parseArgs({
    args: [...argv],
    options: {
      // The suite's --quick keeps to what fits its two minutes: small groups, SQLite.
      members: { type: 'string', default: quick ? '10,100' : '10,100,1000' },
      engines: { type: 'string', default: quick ? 'sqlite' : 'sqlite,postgres' },
    },
  });
  const sizes = options.members.split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 3 || n > 1_000)) throw new Error('--members takes sizes from 3 to 1,000, comma-separated');
  const engines = options.engines.split(',') as EngineName[];

  /** Per-size work, full and --quick. */
  const RUN = quick
    ? { latencyReps: 3, streamEnvelopes: 4_000, streamRounds: 1, rekeyReps: 1, cipher: { budgetMs: 150, decrypts: 1_000, rounds: 3 } }
    : { latencyReps: 7, streamEnvelopes: 20_000, streamRounds: 2, rekeyReps: 3, cipher: { budgetMs: 400, decrypts: 5_000, rounds: 5 } };
  const plaintext = Uint8Array.from({ length: MESSAGE_BYTES }, (_, i) => (7 + i * 31) & 0xff);
  const cipherOptions: CipherOptions = { plaintext, ...RUN.cipher };

  type Row = [figure: string, members: string, parley: string, peer: string, peerIs: string, ratio: string];
  const rows: Row[] = [];
  const notes: string[] = [];
  const figures: Record<string, unknown> = {};

  // 1 and 3: the group cipher, and the sender's whole cost per message.
  progress('group cipher: Parley vs libsignal');
  const cipher = await groupCipherFigures(cipherOptions);
  figures['groupEncryptUs'] = { parley: cipher.encrypt[0], libsignal: cipher.encrypt[1] };
  figures['groupDecryptUs'] = { parley: cipher.decrypt[0], libsignal: cipher.decrypt[1] };
  rows.push(['groupEncrypt, µs/msg', 'any', formatMicros(cipher.encrypt[0]), formatMicros(cipher.encrypt[1]), 'libsignal 0.90', ratio(cipher.encrypt[0], cipher.encrypt[1])]);
  rows.push(['groupDecrypt, µs/msg', 'any', formatMicros(cipher.decrypt[0]), formatMicros(cipher.decrypt[1]), 'libsignal 0.90', ratio(cipher.decrypt[0], cipher.decrypt[1])]);
  const costs = new Map<number, [number, number]>();
  for (const n of sizes) {
    progress(`sender's cost of a group message to ${n} members vs a one-to-one message`);
    const usernames = Array.from({ length: n }, (_, i) => `gxxxxxx_m${i}`);
    const cost = await senderCost(groupRecipients(usernames, () => 0x2a2a), cipherOptions);
    costs.set(n, cost);
    rows.push(['sender cost: groupEncrypt + multicast frame vs 1:1 (encrypt ×2 + send frame)', n.toLocaleString('en'), formatMicros(cost[0]), formatMicros(cost[1]), 'one-to-one', ratio(cost[0], cost[1])]);
  }
  figures['senderCostUs'] = Object.fromEntries([...costs].map(([n, [group, oneToOne]]) => [n, { group, oneToOne }]));

  // 2 and 4: through a real server.
  const provider = createNodeProvider();
  const maxMembers = Math.max(...sizes);
  const rekeyResults = new Map<string, number>();
  const rekeySeries: Series[] = [];
  for (const engine of engines) {
    const label = labelOf(engine);
    if (engineCases.find((c) => c.engine === engine)?.available !== true) {
      notes.push(`${label}: SKIPPED (unreachable)`);
      continue;
    }
    progress(`${label}: a fresh server, ${maxMembers} members × 2 devices`);
    const storage = await freshStorage(engine);
    const server = await spawnServer(storage, ['--trust-proxy', '127.0.0.1']);
    let members: Member[] = [];
    const rekeyPoints: [number, number][] = [];
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
          // Member n − 1 − rep leaves: a different member each time, so every repetition re-keys n − 1 members.
          const remaining = group.filter((_, i) => i !== n - 1 - rep);
          rekeys.push(await rekey(wire, server.url, remaining, plaintext));
        }
        const rekeyMs = median(rekeys);
        rekeyResults.set(`${label}/${n}`, rekeyMs);
        rekeyPoints.push([n, rekeyMs]);
        figures[`${engine}/${n}`] = { multicastLatencyMs: multicastLatency, sendLatencyMs: sendLatency, multicastRate, sendRate, multicastCpuUs: multicastCpu, sendCpuUs: sendCpu, rekeyMs };
        rows.push([`re-key ${label}: key 1:1 to ${2 * (n - 1) - 1} devices, then the message`, `${size} − 1`, ms(rekeyMs), ms(GOAL.rekeyMs), 'goal', ratio(rekeyMs, GOAL.rekeyMs)]);
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
    rekeySeries.push({ name: `re-key, ${label}`, points: rekeyPoints });
  }

  const goals: Goal[] = [];
  const atGoal = costs.get(GOAL.atMembers);
  goals.push({
    goal: `sender's cost of a group message to ${GOAL.atMembers.toLocaleString('en')} members, against a one-to-one message`,
    target: `≤ ${GOAL.senderCostRatio}×`,
    measured: atGoal === undefined ? `not measured (no --members ${GOAL.atMembers})` : ratio(atGoal[0], atGoal[1]),
    met: atGoal === undefined ? null : atGoal[0] / atGoal[1] <= GOAL.senderCostRatio,
  });
  for (const engine of engines) {
    const value = rekeyResults.get(`${labelOf(engine)}/${GOAL.atMembers}`);
    goals.push({
      goal: `re-key after a removal from ${GOAL.atMembers.toLocaleString('en')} members, ${labelOf(engine)}`,
      target: `≤ ${GOAL.rekeyMs.toLocaleString('en')} ms`,
      measured: value === undefined ? 'not measured' : ms(value),
      met: value === undefined ? null : value <= GOAL.rekeyMs,
    });
  }

  return {
    id: 'groups',
    title: 'Groups: sender keys and multicast',
    peer: 'libsignal-client 0.90 (group cipher); a one-to-one message (sender cost); one send per member account (fan-out)',
    summary:
      `Groups of ${sizes.map((n) => n.toLocaleString('en')).join(', ')} members × 2 devices, ${MESSAGE_BYTES}-byte messages, medians of the repetitions` +
      `${quick ? ' (--quick: fewer repetitions)' : ''}. Fan-out and re-key run through a real server with every device connected.`,
    tables: [{ title: 'Groups', header: ['figure', 'members', 'Parley', 'peer', 'peer is', 'Parley÷peer'], rows, ...(notes.length > 0 ? { note: notes.join(' ') } : {}) }],
    goals,
    plots: [
      {
        id: 'groups-sender-cost',
        title: "Sender's cost of one message against group size",
        x: { label: 'members', log: true },
        y: { label: 'µs per message', log: true },
        series: [
          { name: 'group message (groupEncrypt + multicast frame)', points: [...costs].map(([n, [group]]) => [n, group] as const) },
          { name: 'one-to-one message', points: [...costs].map(([n, [, oneToOne]]) => [n, oneToOne] as const) },
        ],
      },
      { id: 'groups-rekey', title: 'Re-key after a removal against group size', x: { label: 'members', log: true }, y: { label: 'ms' }, series: rekeySeries },
    ],
    figures,
  };
};

await runPart(part);
