/**
 * bench/cluster: envelopes delivered per second and send→deliver latency on
 * one, two and three Parley nodes sharing PostgreSQL and Redis (`--redis`),
 * beside one node on SQLite and one on PostgreSQL alone, with what capacity
 * planning needs: each node's CPU-seconds per thousand envelopes.
 *
 *   npm run bench:cluster --workspace bench [-- --nodes 1,2,3 --rounds 1]
 *
 * The workload and drivers are bench/server's: PAIRS sender/recipient pairs,
 * IN_FLIGHT sends outstanding per sender (closed loop), then an open loop at
 * half that rate; on n nodes, lane i's sender is on node i mod n and its
 * recipient on the next node, so every envelope crosses nodes. All nodes,
 * PostgreSQL, Redis and this client share the machine's cores: on two cores,
 * more nodes cannot add throughput here, and the per-node cost is the figure
 * that carries to a real deployment. CPU is each node's own (its /metrics),
 * over the closed loop, per thousand envelopes stored cluster-wide;
 * PostgreSQL's and Redis's CPU are not in it.
 */
import { parseArgs } from 'node:util';

import { redisAvailable, redisUrl } from '../../testing/redis.js';
import { engineCases, freshStorage, spawnServer, type EngineName, type ServerProcess } from '../../testing/server.js';
import { runPart, type Part, type Table } from '../lib/report.js';
import { Driver, type RunResult, type Timing } from '../server/driver.js';
import { scrape } from '../server/metrics.js';
import { parleyWorkload } from '../server/parley.js';

const PAIRS = 100;
const IN_FLIGHT = 10;
const BODY_BYTES = 32;
const TIMING = { warmupMs: 1_000, windowMs: 5_000 } as const;
const QUICK_TIMING = { warmupMs: 500, windowMs: 2_000 } as const;
const HALF_LOAD = 0.5;

interface Config {
  readonly label: string;
  readonly engine: EngineName;
  readonly nodes: number;
  readonly redis: boolean;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);
/** The middle value, or the mean of the two middle ones. */
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return Number.isInteger(middle) ? (sorted[middle - 1]! + sorted[middle]!) / 2 : sorted[Math.floor(middle)]!;
};

interface Measured {
  readonly full: RunResult;
  readonly half: RunResult;
  /** Per node: CPU-seconds per thousand envelopes stored by the whole cluster, over the closed loop. */
  readonly cpuPer1k: readonly number[];
}

/** Each node's CPU-seconds, and the envelopes stored cluster-wide, before and after `run`. */
async function withCpu<T>(nodes: readonly ServerProcess[], run: () => Promise<T>): Promise<[T, number[]]> {
  const before = await Promise.all(nodes.map((n) => scrape(n.url)));
  const result = await run();
  const after = await Promise.all(nodes.map((n) => scrape(n.url)));
  const delta = (i: number, name: string) => (after[i]!.get(name) ?? 0) - (before[i]!.get(name) ?? 0);
  const stored = nodes.reduce((sum, _, i) => sum + delta(i, 'parley_envelopes_stored_total'), 0);
  return [result, nodes.map((_, i) => delta(i, 'parley_process_cpu_seconds_total') / (stored / 1000))];
}

/** Starts `config`'s nodes on fresh storage, runs the loops `rounds` times, and stops everything. */
async function measure(config: Config, driver: Driver, rounds: number, timing: Timing): Promise<Measured[]> {
  const storage = await freshStorage(config.engine);
  const nodes: ServerProcess[] = [];
  try {
    const args = config.redis ? ['--redis', redisUrl] : [];
    nodes.push(await spawnServer(storage, args)); // the first migrates; the others find the schema ready
    nodes.push(...(await Promise.all(Array.from({ length: config.nodes - 1 }, () => spawnServer(storage, args)))));
    const workload = await parleyWorkload(nodes, PAIRS, BODY_BYTES, driver);
    const results: Measured[] = [];
    try {
      for (let r = 0; r < rounds; r++) {
        const [full, cpuPer1k] = await withCpu(nodes, () => driver.closedLoop(workload, IN_FLIGHT, timing));
        const half = await driver.openLoop(workload, full.rate * HALF_LOAD, timing);
        progress(`  ${config.label}: ${Math.round(full.rate).toLocaleString('en')} /s, p99 ${full.p99.toFixed(1)} ms; half load p99 ${half.p99.toFixed(1)} ms`);
        results.push({ full, half, cpuPer1k });
      }
    } finally {
      await workload.close();
    }
    return results;
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await storage.drop();
  }
}

export const part: Part = async ({ quick, argv }) => {
  const { values: options } = parseArgs({
    args: [...argv],
    options: { nodes: { type: 'string', default: '1,2,3' }, rounds: { type: 'string', default: quick ? '1' : '2' } },
  });
  const counts = options.nodes.split(',').map(Number);
  const rounds = Number(options.rounds);
  const timing = quick ? QUICK_TIMING : TIMING;
  const postgres = engineCases.find((c) => c.engine === 'postgres')!.available;
  const configs: Config[] = [
    { label: 'SQLite sync=full, 1 node', engine: 'sqlite', nodes: 1, redis: false },
    ...(postgres ? [{ label: 'PostgreSQL, 1 node (no Redis)', engine: 'postgres' as const, nodes: 1, redis: false }] : []),
    ...(postgres && redisAvailable
      ? counts.map((n) => ({ label: `PostgreSQL + Redis, ${n} node${n === 1 ? '' : 's'}`, engine: 'postgres' as const, nodes: n, redis: true }))
      : []),
  ];
  const skipped = postgres && redisAvailable ? '' : ' Clusters SKIPPED: PostgreSQL or Redis unreachable.';

  const driver = new Driver();
  const measured: [Config, Measured[]][] = [];
  for (const config of configs) {
    progress(config.label);
    measured.push([config, await measure(config, driver, rounds, timing)]);
  }

  // The peer every row is divided by: the single SQLite node, measured first in this run.
  const sqliteRate = median(measured[0]![1].map((r) => r.full.rate));
  const ms = (n: number) => n.toFixed(1);
  const cpu = (n: number) => n.toFixed(3);
  const table: Table = {
    title: `${PAIRS} pairs × ${IN_FLIGHT} in flight, ${BODY_BYTES}-byte bodies; every envelope across nodes on 2 or more`,
    header: ['servers', 'delivered/s', '÷ SQLite, 1 node', 'p50 ms', 'p99 ms', 'half-load p99 ms', 'CPU-s per 1k env, each node', 'all nodes'],
    rows: measured.map(([config, results]) => {
      const perNode = Array.from({ length: config.nodes }, (_, i) => median(results.map((r) => r.cpuPer1k[i]!)));
      const rate = median(results.map((r) => r.full.rate));
      return [
        config.label,
        Math.round(rate).toLocaleString('en'),
        `${(rate / sqliteRate).toFixed(2)}×`,
        ms(median(results.map((r) => r.full.p50))),
        ms(median(results.map((r) => r.full.p99))),
        ms(median(results.map((r) => r.half.p99))),
        perNode.map(cpu).join(' / '),
        cpu(perNode.reduce((a, b) => a + b, 0)),
      ];
    }),
    note:
      `Medians of ${rounds} round${rounds === 1 ? '' : 's'}. Half load: an open loop at ${HALF_LOAD * 100}% of the closed loop's rate. ` +
      `CPU: each node's process, over the closed loop, per thousand envelopes stored by all nodes (PostgreSQL and Redis not included).${skipped}`,
  };
  const figures: Record<string, unknown> = {};
  for (const [config, results] of measured) figures[config.label] = results;
  return {
    id: 'cluster',
    title: 'Several nodes: one, two and three on PostgreSQL and Redis',
    peer: 'one node on SQLite sync=full, and one on PostgreSQL without Redis, same clients, in the same run',
    summary:
      `${PAIRS} sender/recipient pairs × ${IN_FLIGHT} in flight on 1, 2 and 3 nodes sharing one PostgreSQL and one Redis; every process on the machine's ` +
      'two cores, so more nodes show their cost here, not their capacity.',
    tables: [table],
    goals: [],
    plots: [],
    figures,
  };
};

await runPart(part);
