/**
 * bench/load: the server under many connections. A generator process
 * (generator.ts) opens N authenticated device connections (100, 1,000 and
 * 10,000; --quick: 100 and 1,000) to a real `parley-server` process and
 * drives sends, against a raw `ws` echo server (bench/server/echo.ts) measured
 * in the same run as the ceiling.
 *
 *   npm run bench:load --workspace bench [-- --quick --engines sqlite,postgres --connections 100,1000,10000 --depths 1000,10000,20000]
 *
 * As a part of the suite (bench/run.ts) it returns its Section; --quick keeps to SQLite, 100 and 1,000 connections.
 *
 * For each engine (SQLite sync=full, PostgreSQL), on fresh storage:
 * 1. setup: the accounts (one device each, keys made once per run) are
 *    registered concurrently, then logged in; the smaller N are the first
 *    accounts, and one more account is the drain's offline device.
 * 2. memory: the server restarted on the same storage (tokens are stateless
 *    and outlive it), its VmRSS idle with no connection, then with 100, 1,000
 *    and 10,000 idle authenticated connections (growth ÷ N).
 * 3. load, from the largest N down (closing connections in between): with N
 *    connected, N/2 senders each send to their own recipient, keeping about
 *    1,000 sends in flight in all (at least one per sender) in a closed loop;
 *    then an open loop at half that rate, latency measured from each send's
 *    scheduled time (bench/server/driver.ts). Opaque pre-built bodies at every
 *    N; real Double Ratchet messages (`protocol`), and texts between pairs of
 *    real ParleyClients (`sdk`, new accounts in place of the raw devices), at
 *    N = 100.
 * 4. drain: 1k, 10k and 20k envelopes queued for the offline device by 50
 *    connected senders, then it connects and takes them all.
 * The echo ceiling runs the same drivers with N/2 clients at each N, and one
 * client × 128 in flight (the server's push window) for the drain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { engineCases, freshStorage, spawnServer, type EngineName, type ServerProcess } from '../../testing/server.js';
import { runPart, type Part } from '../lib/report.js';
import { spawnEcho } from '../server/echo.js';
import type { RunResult } from '../server/driver.js';
import type { Answer, Command, DrainAnswer, RunAnswer } from './commands.js';
import { loadSection, type EngineResult, type LoadResults } from './section.js';
import { inFlightPerLane, parseVmRss } from './stats.js';

/** Accounts that keep protocol stores: the `protocol` workload's 50 pairs, at N = 100. */
const PROTOCOL_CONNECTIONS = 100;
/** Connected devices that queue the drain's envelopes. */
const DRAIN_SENDERS = 50;
/** The server's push window (MAX_INFLIGHT_ENVELOPES), as the echo's in-flight count for the drain's ceiling. */
const DRAIN_ECHO_IN_FLIGHT = 128;
/** Run lengths: each closed and open loop, and the pause after connecting before reading the server's RSS. */
interface Plan {
  readonly timing: { readonly warmupMs: number; readonly windowMs: number };
  readonly memorySettleMs: number;
}
const PLAN: Plan = { timing: { warmupMs: 1_000, windowMs: 4_000 }, memorySettleMs: 1_000 };
const QUICK_PLAN: Plan = { timing: { warmupMs: 250, windowMs: 1_000 }, memorySettleMs: 500 };

const LABEL: Record<EngineName, string> = { sqlite: 'SQLite sync=full', postgres: 'PostgreSQL' };
const progress = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const rssOf = (pid: number) => parseVmRss(readFileSync(`/proc/${pid}/status`, 'utf8'));

/** The generator process and its command channel. */
class Generator {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  readonly #exited: Promise<unknown>;
  #next = 0;

  constructor() {
    const script = fileURLToPath(new URL('generator.ts', import.meta.url));
    this.#child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (answer: Answer) => {
      const waiter = this.#waiting.get(answer.id);
      this.#waiting.delete(answer.id);
      if (answer.ok) waiter?.resolve(answer.result);
      else waiter?.reject(new Error(`generator: ${answer.error}`));
    });
    this.#exited = new Promise((resolve) => {
      this.#child.on('exit', (code, signal) => {
        for (const waiter of this.#waiting.values()) waiter.reject(new Error(`the generator exited (${code ?? signal})`));
        this.#waiting.clear();
        resolve(code ?? signal);
      });
    });
  }

  request<T>(command: Command): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#child.send({ id, command });
    });
  }

  async stop(): Promise<void> {
    if (this.#child.connected) this.#child.disconnect();
    await this.#exited;
  }
}

const describeRun = (what: string, answer: RunAnswer) =>
  progress(
    `  ${what}: ${Math.round(answer.closed.rate).toLocaleString('en')}/s, p99 ${answer.closed.p99.toFixed(1)} ms` +
      (answer.open === undefined ? '' : `; open loop at ${Math.round(answer.offered ?? 0).toLocaleString('en')}/s: p50 ${answer.open.p50.toFixed(1)}, p99 ${answer.open.p99.toFixed(1)}, p99.9 ${answer.open.p999.toFixed(1)} ms`) +
      `; generator ${answer.clientCores.toFixed(2)} cores`,
  );

async function measureEngine(generator: Generator, engine: EngineName, connections: readonly number[], depths: readonly number[], plan: Plan, echoUrl: string): Promise<EngineResult> {
  const label = LABEL[engine];
  const maxN = Math.max(...connections);
  const storage = await freshStorage(engine);
  const args = ['--trust-proxy', '127.0.0.1'];
  let server: ServerProcess | undefined;
  try {
    server = await spawnServer(storage, args);
    progress(`${label}: setup`);
    const registered = await generator.request<{ ms: number }>({ op: 'register', url: server.url, wsUrl: server.wsUrl });
    const loggedIn = await generator.request<{ ms: number }>({ op: 'login', upTo: maxN });

    // Tokens are stateless (an HMAC by a key kept in storage), so they outlive a restart: the idle baseline is a fresh process.
    progress(`${label}: server restarted on the same storage; memory with idle connections`);
    await server.stop();
    server = await spawnServer(storage, args);
    await generator.request({ op: 'use', url: server.url, wsUrl: server.wsUrl });
    const pid = server.process.pid!;
    await sleep(plan.memorySettleMs);
    const memory = [{ connections: 0, rss: rssOf(pid), connectMs: 0 }];
    for (const n of [...connections].sort((a, b) => a - b)) {
      const connected = await generator.request<{ ms: number }>({ op: 'connect', upTo: n });
      await sleep(plan.memorySettleMs);
      memory.push({ connections: n, rss: rssOf(pid), connectMs: connected.ms });
      progress(`  ${n.toLocaleString('en')} connected: RSS ${(memory.at(-1)!.rss / 2 ** 20).toFixed(0)} MiB`);
    }

    const loads: EngineResult['loads'][number][] = [];
    const timing = plan.timing;
    for (const n of [...connections].sort((a, b) => b - a)) {
      await generator.request({ op: 'disconnect', downTo: n });
      const lanes = n / 2;
      const answer = await generator.request<RunAnswer>({ op: 'run', workload: 'opaque', lanes, inFlight: inFlightPerLane(lanes), timing, open: true });
      describeRun(`${label}, ${n.toLocaleString('en')} connections, opaque`, answer);
      // The echo at the same offered rate and connections: its latency at equal load.
      const echoOpen = await generator.request<RunResult>({ op: 'open', workload: 'echo', echoUrl, lanes, rate: answer.offered!, timing });
      progress(`  echo at the same rate: p50 ${echoOpen.p50.toFixed(1)}, p99 ${echoOpen.p99.toFixed(1)} ms`);
      loads.push({ connections: n, mode: 'opaque', answer, echoOpen });
      if (n === PROTOCOL_CONNECTIONS) {
        const lanes = PROTOCOL_CONNECTIONS / 2;
        const protocol = await generator.request<RunAnswer>({ op: 'run', workload: 'protocol', lanes, inFlight: inFlightPerLane(lanes), timing, open: true });
        describeRun(`${label}, ${n.toLocaleString('en')} connections, protocol`, protocol);
        loads.push({ connections: n, mode: 'protocol', answer: protocol });
        // The SDK's clients are devices of their own: the raw ones step aside, so that N stays N.
        await generator.request({ op: 'disconnect', downTo: 0 });
        const sdk = await generator.request<RunAnswer>({ op: 'run', workload: 'sdk', lanes, inFlight: inFlightPerLane(lanes), timing, open: true });
        describeRun(`${label}, ${n.toLocaleString('en')} connections, SDK clients`, sdk);
        loads.push({ connections: n, mode: 'sdk', answer: sdk });
        await generator.request({ op: 'connect', upTo: n });
      }
    }

    const drains: EngineResult['drains'][number][] = [];
    for (const depth of depths) {
      const answer = await generator.request<DrainAnswer>({ op: 'drain', depth, senders: Math.min(DRAIN_SENDERS, Math.min(...connections)) });
      progress(`  drain of ${depth.toLocaleString('en')}: ${answer.drainMs.toFixed(0)} ms (queued in ${answer.fillMs.toFixed(0)} ms)`);
      drains.push({ depth, answer });
    }
    await generator.request({ op: 'reset' });
    return { engine, label, setup: { registerMs: registered.ms, loginMs: loggedIn.ms, accounts: maxN + 1 }, memory, loads, drains };
  } finally {
    await server?.stop();
    await storage.drop();
  }
}

const list = (value: string) => value.split(',').map((item) => Number(item.replaceAll('_', '')));

export const part: Part = async ({ quick, argv }) => {
  const { values: options } = parseArgs({
    args: [...argv],
    options: {
      // The suite's --quick keeps to what fits its two minutes: SQLite, up to 1,000 connections.
      engines: { type: 'string', default: quick ? 'sqlite' : 'sqlite,postgres' },
      connections: { type: 'string', default: quick ? '100,1000' : '100,1000,10000' },
      depths: { type: 'string', default: quick ? '1000,10000' : '1000,10000,20000' },
    },
  });
  const connections = list(options.connections);
  const depths = list(options.depths);
  if (connections.some((n) => !Number.isInteger(n) || n < 2 || n % 2 !== 0 || n > 10_000)) throw new Error('--connections takes even counts from 2 to 10,000');
  if (depths.some((n) => !Number.isInteger(n) || n < 1 || n > 20_000)) throw new Error('--depths takes depths from 1 to 20,000 (MAX_MAILBOX_ENVELOPES)');
  const engines = (options.engines.split(',') as EngineName[]).filter((engine) => {
    const available = engineCases.find((c) => c.engine === engine)?.available === true;
    if (!available) progress(`${engine}: SKIPPED (unavailable)`);
    return available;
  });
  const plan = quick ? QUICK_PLAN : PLAN;
  const timing = plan.timing;
  const maxN = Math.max(...connections);

  const generator = new Generator();
  try {
    const started = performance.now();
    const prepared = await generator.request<{ ms: number }>({ op: 'prepare', count: maxN + 1, keptCount: Math.min(PROTOCOL_CONNECTIONS, maxN) });
    progress(`keys and sessions of the first ${Math.min(PROTOCOL_CONNECTIONS, maxN)} accounts made in ${(prepared.ms / 1000).toFixed(1)} s`);

    progress('ws echo (the ceiling)');
    const echoServer = await spawnEcho();
    try {
      const echo: LoadResults['echo'][number][] = [];
      for (const n of connections) {
        const lanes = n / 2;
        const answer = await generator.request<RunAnswer>({ op: 'run', workload: 'echo', echoUrl: echoServer.url, lanes, inFlight: inFlightPerLane(lanes), timing, open: true });
        describeRun(`echo, ${lanes.toLocaleString('en')} clients`, answer);
        echo.push({ connections: n, answer });
      }
      const echoDrain = await generator.request<RunAnswer>({ op: 'run', workload: 'echo', echoUrl: echoServer.url, lanes: 1, inFlight: DRAIN_ECHO_IN_FLIGHT, timing, open: false });
      describeRun(`echo, 1 client × ${DRAIN_ECHO_IN_FLIGHT}`, echoDrain);

      const results: EngineResult[] = [];
      for (const engine of engines) results.push(await measureEngine(generator, engine, connections, depths, plan, echoServer.url));
      return loadSection({ quick, connections, depths, timing, prepareMs: prepared.ms, totalMs: performance.now() - started, echo, echoDrain, engines: results });
    } finally {
      await echoServer.stop();
    }
  } finally {
    await generator.stop();
  }
};

await runPart(part);
