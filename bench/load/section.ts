/**
 * bench/load's Section: its tables, goals and plots from the figures of one
 * run (index.ts measures; this only arranges).
 */
import type { EngineName } from '../../testing/server.js';
import type { Goal, Plot, Section, Table } from '../lib/report.js';
import type { RunResult } from '../server/driver.js';
import type { DrainAnswer, RunAnswer, WorkloadKind } from './commands.js';
import { bytesPerConnection, perSecond } from './stats.js';

const GOAL = { rateRatio: 0.5, halfLoadP99Ms: 20, bytesPerConnection: 20_000 } as const;

export interface EngineResult {
  readonly engine: EngineName;
  readonly label: string;
  readonly setup: { readonly registerMs: number; readonly loginMs: number; readonly accounts: number };
  /** The server's VmRSS with 0 and then N idle connections, and how long connecting up to N took. */
  readonly memory: readonly { readonly connections: number; readonly rss: number; readonly connectMs: number }[];
  /** Each run; for opaque bodies, also the echo's open loop at the same offered rate and N. */
  readonly loads: readonly { readonly connections: number; readonly mode: Exclude<WorkloadKind, 'echo'>; readonly answer: RunAnswer; readonly echoOpen?: RunResult }[];
  readonly drains: readonly { readonly depth: number; readonly answer: DrainAnswer }[];
}

export interface LoadResults {
  readonly quick: boolean;
  readonly connections: readonly number[];
  readonly depths: readonly number[];
  readonly timing: { readonly warmupMs: number; readonly windowMs: number };
  readonly prepareMs: number;
  readonly totalMs: number;
  readonly echo: readonly { readonly connections: number; readonly answer: RunAnswer }[];
  /** One echo client × the server's push window: the drain's ceiling. */
  readonly echoDrain: RunAnswer;
  readonly engines: readonly EngineResult[];
}

const count = (n: number) => Math.round(n).toLocaleString('en');
const rate = (n: number) => `${(n / 1000).toFixed(1)}k`;
const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const times = (n: number) => `${n.toFixed(2)}×`;
const seconds = (n: number) => `${(n / 1000).toFixed(1)} s`;
const kb = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const MODE = { opaque: 'opaque bodies', protocol: 'Double Ratchet', sdk: 'SDK clients' } as const;

/** Growth in RSS per connection at each N, from the idle baseline. */
function memoryRows(engine: EngineResult) {
  const base = engine.memory[0]!;
  return engine.memory.slice(1).map((m) => ({ ...m, perConnection: bytesPerConnection(base.rss, m.rss, m.connections), growth: m.rss - base.rss }));
}

export function loadSection(r: LoadResults): Section {
  const echoAt = (n: number) => r.echo.find((e) => e.connections === n)!.answer;
  const maxN = Math.max(...r.connections);
  const sorted = [...r.connections].sort((a, b) => a - b);
  const loadsOf = (e: EngineResult) => [...e.loads].sort((a, b) => a.connections - b.connections || a.mode.localeCompare(b.mode));

  const closedRows = [
    ...r.echo.map((e) => ['ws echo', count(e.connections), 'raw frames', count(e.connections / 2), rate(e.answer.closed.rate), '1.00×', ms(e.answer.closed.p50), ms(e.answer.closed.p99), ms(e.answer.closed.p999), e.answer.clientCores.toFixed(2)]),
    ...r.engines.flatMap((e) =>
      loadsOf(e).map((l) => [
        `Parley, ${e.label}`,
        count(l.connections),
        MODE[l.mode],
        count(l.connections / 2),
        rate(l.answer.closed.rate),
        times(l.answer.closed.rate / echoAt(l.connections).closed.rate),
        ms(l.answer.closed.p50),
        ms(l.answer.closed.p99),
        ms(l.answer.closed.p999),
        l.answer.clientCores.toFixed(2),
      ]),
    ),
  ];
  const openRows = [
    ...r.echo.map((e) => ['ws echo, half its peak', count(e.connections), 'raw frames', count(e.answer.offered ?? 0), rate(e.answer.open!.rate), ms(e.answer.open!.p50), ms(e.answer.open!.p99), ms(e.answer.open!.p999), '–', '–']),
    ...r.engines.flatMap((e) =>
      loadsOf(e).map((l) => [
        `Parley, ${e.label}`,
        count(l.connections),
        MODE[l.mode],
        count(l.answer.offered ?? 0),
        rate(l.answer.open!.rate),
        ms(l.answer.open!.p50),
        ms(l.answer.open!.p99),
        ms(l.answer.open!.p999),
        l.echoOpen === undefined ? '–' : ms(l.echoOpen.p99),
        l.echoOpen === undefined ? '–' : `${(l.answer.open!.p99 / l.echoOpen.p99).toFixed(1)}×`,
      ]),
    ),
  ];
  const opaqueAt = (e: EngineResult, n: number) => e.loads.find((l) => l.connections === n && l.mode === 'opaque')!.answer;
  const growthRows = [
    ...[...r.engines.map((e) => ({ label: `Parley, ${e.label}`, at: (n: number) => opaqueAt(e, n) })), { label: 'ws echo', at: echoAt }].flatMap(({ label, at }) => [
      [`${label}: delivered/s (closed loop)`, ...sorted.map((n) => rate(at(n).closed.rate))],
      [`${label}: p50 ms at half peak`, ...sorted.map((n) => ms(at(n).open!.p50))],
      [`${label}: p99 ms at half peak`, ...sorted.map((n) => ms(at(n).open!.p99))],
    ]),
    ...r.engines.map((e) => [`Parley, ${e.label}: server RSS growth per idle connection`, ...sorted.map((n) => kb(memoryRows(e).find((m) => m.connections === n)!.perConnection))]),
  ];
  const memoryTable = r.engines.flatMap((e) => [
    [e.label, '0', mib(e.memory[0]!.rss), '–', '–', '–'],
    ...memoryRows(e).map((m) => [e.label, count(m.connections), mib(m.rss), mib(m.growth), kb(m.perConnection), seconds(m.connectMs)]),
  ]);
  const drainRows = r.engines.flatMap((e) =>
    e.drains.map((d) => {
      const drained = perSecond(d.depth, d.answer.drainMs);
      return [e.label, count(d.depth), ms(d.answer.drainMs), rate(drained), times(drained / r.echoDrain.closed.rate), ms(d.answer.fillMs), rate(perSecond(d.depth, d.answer.fillMs))];
    }),
  );
  const setupRows = r.engines.map((e) => [
    e.label,
    count(e.setup.accounts),
    seconds(e.setup.registerMs),
    `${count(perSecond(e.setup.accounts, e.setup.registerMs))}/s`,
    seconds(e.setup.loginMs),
    seconds(e.memory.reduce((sum, m) => sum + m.connectMs, 0)),
  ]);

  const tables: Table[] = [
    {
      title: 'Closed loop: delivered envelopes per second and send→deliver latency',
      header: ['workload', 'connections', 'bodies', 'senders', 'delivered/s', '÷echo', 'p50 ms', 'p99 ms', 'p99.9 ms', 'generator cores'],
      rows: closedRows,
      note:
        'N connections = N/2 senders each sending to its own recipient, about 1,000 sends in flight in all (at least one per sender); every envelope stored durably, delivered and acknowledged. ' +
        '"opaque bodies": pre-built 32-byte bodies (the server alone); "Double Ratchet": real @parley/protocol sessions, encrypted before each send and decrypted on delivery, in the generator; ' +
        '"SDK clients": N ParleyClients (in-memory stores) sending with sendText, each text shown by the recipient\'s client, which also sends a delivery receipt back (two envelopes per text; delivered/s counts texts). ' +
        'ws echo: N/2 clients of a raw ws echo server with frames of the same size, through the same driver, in the same run; ÷echo divides by it at the same N. The generator is one process sharing the 2 cores with the server.',
    },
    {
      title: 'Open loop at half the closed-loop peak: latency without coordinated omission',
      header: ['workload', 'connections', 'bodies', 'offered/s', 'delivered/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'echo p99 ms, same rate', 'p99÷echo'],
      rows: openRows,
      note:
        'Sends paced at half the same workload’s closed-loop rate, whatever the answers; latency from each send’s scheduled time to its delivery. ' +
        'The echo also ran at each Parley run’s offered rate with the same N, right after it: "echo p99 ms, same rate" and p99÷echo compare at equal load. ' +
        'At half its own peak the echo asks more of the generator than the Parley runs do; where its delivered/s falls short of the offered rate, the generator, not the echo server, is the bound.',
    },
    { title: 'Growth against connections (opaque bodies)', header: ['figure', ...sorted.map((n) => `${count(n)} connections`)], rows: growthRows },
    {
      title: 'Server memory against idle authenticated connections',
      header: ['engine', 'connections', 'server RSS MiB', 'growth MiB', 'per connection', 'connecting took'],
      rows: memoryTable,
      note: 'VmRSS of the parley-server process (/proc/<pid>/status): a fresh process (restarted on the same storage after the registrations and logins), then a moment after each step of connecting more devices (each authenticated, its empty mailbox drained, then idle); growth from the 0-connection baseline ÷ N. kB = 1,000 bytes.',
    },
    {
      title: 'Draining a queued mailbox to one device that comes online',
      header: ['engine', 'depth', 'drain ms', 'envelopes/s', '÷echo', 'queueing ms', 'queued/s'],
      rows: drainRows,
      note: `Envelopes queued by 50 connected senders for one offline device, which then connects: from its auth frame to its drained frame, every envelope received and acknowledged as read. ÷echo: one echo client with 128 frames in flight (the server's push window), ${rate(r.echoDrain.closed.rate)}/s. Mailboxes hold at most 20,000 envelopes (MAX_MAILBOX_ENVELOPES).`,
    },
    {
      title: 'Setup',
      header: ['engine', 'accounts', 'registered in', 'registrations', 'logins', 'connections'],
      rows: setupRows,
      note: `Keys for ${count(maxN + 1)} accounts are made once and registered on each engine (the first engine's time includes making them; the 100 that keep stores, with their sessions, took ${seconds(r.prepareMs)} before), 32 requests at a time, each device from its own X-Forwarded-For address (--trust-proxy 127.0.0.1). The whole part took ${seconds(r.totalMs)}.`,
    },
  ];

  const goals: Goal[] = [];
  const sqlite = r.engines.find((e) => e.engine === 'sqlite');
  if (sqlite !== undefined) {
    for (const n of sorted) {
      const [ours, echo] = [opaqueAt(sqlite, n).closed.rate, echoAt(n).closed.rate];
      goals.push({
        goal: `server throughput with durable storage ≥ 50% of the raw ws echo rate, on SQLite (${count(n)} connections)`,
        target: `≥ ${times(GOAL.rateRatio)} echo`,
        measured: `${times(ours / echo)} (${rate(ours)}/s vs ${rate(echo)}/s)`,
        met: ours / echo >= GOAL.rateRatio,
      });
    }
  }
  for (const e of r.engines) {
    for (const n of sorted) {
      const p99 = opaqueAt(e, n).open!.p99;
      goals.push({ goal: `p99 latency under 20 ms at half the peak rate (${e.label}, ${count(n)} connections)`, target: `< ${GOAL.halfLoadP99Ms} ms`, measured: `${ms(p99)} ms`, met: p99 < GOAL.halfLoadP99Ms });
    }
  }
  for (const e of r.engines) {
    const at = memoryRows(e).find((m) => m.connections === maxN)!;
    goals.push({
      goal: `${count(maxN)} idle connections at under 20 KB each (${e.label})`,
      target: `< ${kb(GOAL.bytesPerConnection)}`,
      measured: kb(at.perConnection),
      met: at.perConnection < GOAL.bytesPerConnection,
    });
  }

  const plots: Plot[] = [
    {
      id: 'load-throughput-vs-connections',
      title: 'Delivered envelopes per second against connections (closed loop)',
      x: { label: 'connections', log: true },
      y: { label: 'envelopes/s' },
      series: [
        ...r.engines.map((e) => ({ name: `Parley, ${e.label}`, points: sorted.map((n) => [n, opaqueAt(e, n).closed.rate] as const) })),
        { name: 'ws echo', points: sorted.map((n) => [n, echoAt(n).closed.rate] as const) },
      ],
    },
    {
      id: 'load-latency-vs-connections',
      title: 'Send→deliver latency at half the peak rate against connections',
      x: { label: 'connections', log: true },
      y: { label: 'ms', log: true },
      series: r.engines.flatMap((e) => [
        { name: `${e.label} p50`, points: sorted.map((n) => [n, opaqueAt(e, n).open!.p50] as const) },
        { name: `${e.label} p99`, points: sorted.map((n) => [n, opaqueAt(e, n).open!.p99] as const) },
      ]),
    },
    {
      id: 'load-memory-vs-connections',
      title: 'Server memory against idle connections',
      x: { label: 'connections', log: true },
      y: { label: 'server RSS, MiB' },
      series: r.engines.map((e) => ({ name: e.label, points: e.memory.filter((m) => m.connections > 0).map((m) => [m.connections, m.rss / 2 ** 20] as const) })),
    },
    {
      id: 'load-drain-vs-depth',
      title: 'Time to drain a mailbox to one device against its depth',
      x: { label: 'queued envelopes', log: true },
      y: { label: 'ms', log: true },
      series: r.engines.map((e) => ({ name: e.label, points: e.drains.map((d) => [d.depth, d.answer.drainMs] as const) })),
    },
  ];

  return {
    id: 'load',
    title: 'Load: the server under many connections',
    peer: 'a raw ws echo server (bench/server/echo.ts), same generator and frame sizes, in the same run',
    summary:
      `A generator process drives ${sorted.map(count).join(', ')} authenticated device connections to a real parley-server process (${r.engines.map((e) => e.label).join(', ')})` +
      `${r.quick ? ' (--quick: SQLite, up to 1,000 connections, short windows)' : ''}: closed-loop throughput, open-loop latency at half of it, idle memory per connection and mailbox drains, ` +
      `each throughput also ÷ a raw ws echo server. Warm-up ${r.timing.warmupMs} ms, window ${r.timing.windowMs} ms per run.`,
    tables,
    goals,
    plots,
    figures: { ...r },
  };
}
