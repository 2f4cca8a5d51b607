/**
 * bench/server: envelopes delivered per second and send→deliver latency
 * through a real Parley server process, against a raw `ws` echo server as the
 * ceiling, from one run, with the ratio Parley ÷ echo for every figure.
 *
 *   npm run bench:server --workspace bench [-- --rounds 3 --engines sqlite-full,sqlite-normal,postgres --profile DIR]
 *
 * Workload: PAIRS sender/recipient pairs of real accounts (one device each,
 * each on its own socket). Closed loop: every sender keeps IN_FLIGHT sends of
 * one BODY_BYTES-byte envelope outstanding and sends again on each `sent`
 * answer (given after the commit); recipients acknowledge every envelope, and
 * the server deletes it. Half load: an open loop paced at 50% of the closed
 * loop's rate in the same round, round-robin over the pairs. The echo ceiling
 * runs PAIRS clients × IN_FLIGHT frames of the same size through the same
 * drivers. Deliveries are counted in a WINDOW_MS window after WARMUP_MS;
 * latency = arrival − send, both performance.now() in this process.
 *
 * The machine's cores are shared by this client, the server and PostgreSQL,
 * so each round runs every workload once, one after the other, in a rotating
 * order; figures are medians of ROUNDS rounds with their [min–max].
 * `--profile DIR` runs the Parley servers under `node --cpu-prof`;
 * `--open-rate N` paces the open loop at N/s instead (latency at equal load).
 * As a part of the suite (bench/run.ts) it returns its Section; --quick runs
 * one round on SQLite sync=full.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { engineCases, freshStorage, spawnServer, type EngineName, type ServerProcess, type Storage } from '../../testing/server.js';
import { runPart, type Goal, type Part, type Table } from '../lib/report.js';
import { Driver, type RunResult, type Workload } from './driver.js';
import { echoWorkload, spawnEcho } from './echo.js';
import { scrape, serverView, type ServerView } from './metrics.js';
import { parleyWorkload } from './parley.js';

const PAIRS = 100;
const IN_FLIGHT = 10;
const BODY_BYTES = 32;
const TIMING = { warmupMs: 1_000, windowMs: 5_000 } as const;
/** --quick: shorter windows, so the whole quick suite stays under two minutes. */
const QUICK_TIMING = { warmupMs: 500, windowMs: 2_000 } as const;
const HALF_LOAD = 0.5;
const GOAL = { rateRatio: 0.5, halfLoadP99Ms: 20 } as const;

interface Config {
  readonly key: string;
  readonly label: string;
  readonly engine: EngineName;
  readonly args: readonly string[];
}

const CONFIGS: readonly Config[] = [
  { key: 'sqlite-full', label: 'Parley, SQLite sync=full', engine: 'sqlite', args: [] },
  { key: 'sqlite-normal', label: 'Parley, SQLite sync=normal', engine: 'sqlite', args: ['--sqlite-sync', 'normal'] },
  { key: 'postgres', label: 'Parley, PostgreSQL', engine: 'postgres', args: [] },
];

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
/** The median, and [min–max] when there are several. */
const spread = (values: readonly number[], format: (n: number) => string) =>
  values.length === 0
    ? '–'
    : values.length === 1
      ? format(values[0]!)
      : `${format(median(values))} [${format(Math.min(...values))}–${format(Math.max(...values))}]`;
const thousands = (n: number) => `${(n / 1000).toFixed(1)}k`;
const fixed = (digits: number) => (n: number) => n.toFixed(digits);
const progress = (line: string) => process.stderr.write(`${line}\n`);

interface Round {
  readonly full: RunResult;
  readonly half: RunResult;
  /** The server's view of each run (Parley only). */
  readonly fullServer?: ServerView;
  readonly halfServer?: ServerView;
  /** This client's CPU over the closed loop, in cores. */
  readonly clientCores: number;
}

interface Subject {
  readonly label: string;
  readonly workload: Workload;
  readonly rounds: Round[];
  readonly server?: ServerProcess;
}

export const part: Part = async ({ quick, argv }) => {
  const { values: options } = parseArgs({
    args: [...argv],
    options: {
      rounds: { type: 'string', default: quick ? '1' : '3' },
      engines: { type: 'string' },
      profile: { type: 'string' },
      'open-rate': { type: 'string' },
    },
  });
  const rounds = Number(options.rounds);
  const wanted = options.engines?.split(',') ?? (quick ? ['sqlite-full'] : CONFIGS.map((c) => c.key));
  /** A fixed rate for the open loop instead of half the closed loop's, to compare latency at equal load. */
  const openRate = options['open-rate'] === undefined ? undefined : Number(options['open-rate']);
  const driver = new Driver();
  const timing = quick ? QUICK_TIMING : TIMING;

  /** Runs `run`, with the server's metrics before and after it. */
  async function observed<T>(subject: Subject, run: () => Promise<T>): Promise<[T, ServerView | undefined]> {
    const url = subject.server?.url;
    const before = url === undefined ? undefined : await scrape(url);
    const result = await run();
    return [result, url === undefined || before === undefined ? undefined : serverView(before, await scrape(url))];
  }

  async function round(subject: Subject): Promise<void> {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const [full, fullServer] = await observed(subject, () => driver.closedLoop(subject.workload, IN_FLIGHT, timing));
    const used = process.cpuUsage(cpu);
    const clientCores = (used.user + used.system) / 1000 / (performance.now() - started);
    const [half, halfServer] = await observed(subject, () => driver.openLoop(subject.workload, openRate ?? full.rate * HALF_LOAD, timing));
    subject.rounds.push({ full, half, clientCores, ...(fullServer && halfServer ? { fullServer, halfServer } : {}) });
    progress(`  ${subject.label}: ${Math.round(full.rate).toLocaleString('en')} /s, p99 ${full.p99.toFixed(1)} ms; half load p99 ${half.p99.toFixed(1)} ms`);
  }

  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const nodeArgs = options.profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(options.profile)}`];
    const parley: Subject[] = [];
    const skipped: string[] = [];
    let frameBytes = 0;
    for (const config of CONFIGS.filter((c) => wanted.includes(c.key))) {
      if (engineCases.find((c) => c.engine === config.engine)?.available !== true) {
        skipped.push(`${config.label}: SKIPPED (PostgreSQL unreachable)`);
        continue;
      }
      const storage: Storage = await freshStorage(config.engine);
      cleanups.push(() => storage.drop());
      const server = await spawnServer(storage, config.args, nodeArgs);
      cleanups.push(() => server.stop());
      const started = performance.now();
      const workload = await parleyWorkload([server], PAIRS, BODY_BYTES, driver);
      cleanups.push(() => workload.close());
      frameBytes = workload.frameBytes;
      progress(`${config.label}: ${2 * PAIRS} accounts registered and connected in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      parley.push({ label: config.label, workload, rounds: [], server });
    }

    if (parley.length === 0) throw new Error(`no engine to run among --engines ${wanted.join(',')}`);
    const echoServer = await spawnEcho();
    cleanups.push(() => echoServer.stop());
    const echoLoad = await echoWorkload(echoServer.url, PAIRS, frameBytes, BODY_BYTES, driver);
    cleanups.push(() => echoLoad.close());
    const echo: Subject = { label: `ws echo (${frameBytes}-byte frames)`, workload: echoLoad, rounds: [] };

    for (let r = 0; r < rounds; r++) {
      progress(`round ${r + 1} of ${rounds}`);
      const order = [echo, ...parley];
      for (let i = 0; i < order.length; i++) await round(order[(i + r) % order.length]!);
    }

    const all = [echo, ...parley];
    const ratio = (s: Subject, pick: (round: Round) => number) => s.rounds.map((x, i) => pick(x) / pick(echo.rounds[i]!));
    const views = (s: Subject, pick: (round: Round) => ServerView | undefined) => s.rounds.flatMap((x) => pick(x) ?? []);
    const tables: Table[] = [
      {
        title: `Closed loop: ${PAIRS} pairs × ${IN_FLIGHT} in flight`,
        header: ['workload', 'delivered/s', '÷echo', 'p50 ms', 'p99 ms', 'server µs/env', 'env/commit', 'commit ms', 'client cores'],
        rows: all.map((s) => [
          s.label,
          spread(s.rounds.map((x) => x.full.rate), thousands),
          spread(ratio(s, (x) => x.full.rate), fixed(2)),
          spread(s.rounds.map((x) => x.full.p50), fixed(1)),
          spread(s.rounds.map((x) => x.full.p99), fixed(1)),
          spread(views(s, (x) => x.fullServer).map((v) => v.cpuPerEnvelopeUs), fixed(0)),
          spread(views(s, (x) => x.fullServer).map((v) => v.envelopesPerCommit), fixed(0)),
          spread(views(s, (x) => x.fullServer).map((v) => v.commitMs), fixed(1)),
          spread(s.rounds.map((x) => x.clientCores), fixed(2)),
        ]),
        note: 'Median [min–max] of the rounds; ÷echo is the ratio to the echo in the same round. Server: CPU per envelope stored, envelopes per group commit and ms per commit, from its /metrics.',
      },
      {
        title: `Half load: an open loop at ${openRate === undefined ? `${HALF_LOAD * 100}% of the same round's closed-loop rate` : `${openRate}/s`}`,
        header: ['workload', 'delivered/s', 'p50 ms', 'p99 ms', 'p99÷echo', 'server µs/env', 'env/commit', 'commit ms'],
        rows: all.map((s) => [
          s.label,
          spread(s.rounds.map((x) => x.half.rate), thousands),
          spread(s.rounds.map((x) => x.half.p50), fixed(1)),
          spread(s.rounds.map((x) => x.half.p99), fixed(1)),
          spread(ratio(s, (x) => x.half.p99), fixed(1)),
          spread(views(s, (x) => x.halfServer).map((v) => v.cpuPerEnvelopeUs), fixed(0)),
          spread(views(s, (x) => x.halfServer).map((v) => v.envelopesPerCommit), fixed(0)),
          spread(views(s, (x) => x.halfServer).map((v) => v.commitMs), fixed(1)),
        ]),
        ...(skipped.length > 0 ? { note: skipped.join(' ') } : {}),
      },
    ];

    const goals: Goal[] = [];
    const figures: Record<string, unknown> = {};
    for (const s of [echo, ...parley]) {
      figures[s.label] = s.rounds.map((x) => ({ rate: x.full.rate, p50: x.full.p50, p99: x.full.p99, halfRate: x.half.rate, halfP99: x.half.p99 }));
    }
    for (const s of parley) {
      const rateRatio = median(ratio(s, (x) => x.full.rate));
      const p99 = median(s.rounds.map((x) => x.half.p99));
      const reference = s.label.includes('sync=full') ? '' : ' (for reference: the goal binds SQLite sync=full)';
      goals.push({ goal: `${PAIRS} pairs: delivered/s with durable storage against the ws echo, ${s.label}${reference}`, target: `≥ ${GOAL.rateRatio.toFixed(2)}×`, measured: `${rateRatio.toFixed(2)}×`, met: rateRatio >= GOAL.rateRatio });
      if (openRate === undefined) goals.push({ goal: `${PAIRS} pairs: p99 at half the peak rate, ${s.label}${reference}`, target: `< ${GOAL.halfLoadP99Ms} ms`, measured: `${p99.toFixed(1)} ms`, met: p99 < GOAL.halfLoadP99Ms });
    }
    return {
      id: 'server',
      title: 'Server delivery: 100 pairs against a raw ws echo',
      peer: 'a raw `ws` echo server in its own process, same clients and frame sizes, in the same rounds',
      summary:
        `${PAIRS} sender/recipient pairs × ${IN_FLIGHT} in flight, ${BODY_BYTES}-byte bodies, each envelope stored durably and acknowledged; warm-up ${timing.warmupMs} ms, ` +
        `window ${timing.windowMs} ms; ${rounds} round${rounds === 1 ? '' : 's'}. Servers: ${parley.map((x) => x.label).join('; ')}. The client shares the machine's two cores with the server.`,
      tables,
      goals,
      plots: [],
      figures,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => {
        console.error(error);
      });
    }
  }
};

await runPart(part);
