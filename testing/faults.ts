/**
 * Shared pieces of the fault harness (packages/server/src/faults.test.ts,
 * faultPoints.test.ts, reconnectStorm.test.ts): restarting a server on the
 * same storage and port, arming a crash point, watching the server's
 * resident memory, and deadlines for promises.
 */
import { readFileSync } from 'node:fs';

import type { CrashPlan } from '../packages/server/src/faultPoints.js';
import { spawnServer, type ServerProcess, type Storage } from './server.js';

/** The environment that arms a crash point in a `parley-server` process: both variables, or nothing happens. */
export function crashEnv(plan: CrashPlan): Record<string, string> {
  return { PARLEY_FAULT_INJECTION: '1', PARLEY_FAULT_CRASH_AT: `${plan.point}:${plan.nth}` };
}

/**
 * The same server again on the same storage and port (the clients know that
 * address), as after a crash and a restart; `args` and `env` as for spawnServer.
 */
export function restart(server: ServerProcess, storage: Storage, args: readonly string[] = [], env: Readonly<Record<string, string>> = {}): Promise<ServerProcess> {
  return spawnServer(storage, ['--port', new URL(server.url).port, ...args], [], env);
}

/** Resolves as `promise` does, or rejects after `ms` saying what was awaited: a hang becomes a message. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`not within ${ms} ms: ${what}`));
    }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => {
    clearTimeout(timer);
  });
}

/** A check that holds once `promise` has settled, either way: for loops that run alongside it. */
export function settled(promise: Promise<unknown>): () => boolean {
  let done = false;
  const mark = () => {
    done = true;
  };
  promise.then(mark, mark);
  return () => done;
}

/** A process's resident memory (VmRSS), in bytes. @throws if the process is gone. */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** The highest resident memory seen while it watched, in bytes. */
export interface MemoryWatch {
  /** Stops sampling; resolves with the peak, the last sample included. */
  stop(): number;
}

/** Samples `server`'s resident memory every `everyMs` until stopped. */
export function watchMemory(server: ServerProcess, everyMs = 100): MemoryWatch {
  const pid = server.process.pid;
  if (pid === undefined) throw new Error('the server process has no pid');
  let peak = residentBytes(pid);
  const sample = () => {
    peak = Math.max(peak, residentBytes(pid));
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

export const MiB = 1024 * 1024;

/** A scrape of /metrics that takes longer fails: a hung server is a failure, not a hung test. */
const SCRAPE_TIMEOUT_MS = 20_000;

/**
 * The value of one sample of the server's /metrics (Prometheus text), such as
 * `parley_websocket_connections`. @throws if the server does not report it.
 */
export async function metric(server: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`no ${name} in the server's metrics`);
  return Number(match[1]);
}

/** The highest value of a /metrics gauge seen while it watched. */
export interface GaugeWatch {
  /** Stops sampling; resolves with the peak, a last sample included. */
  stop(): Promise<number>;
}

/** Samples the gauge `name` of `server` every `everyMs` (one scrape at a time) until stopped. */
export function watchGauge(server: ServerProcess, name: string, everyMs = 20): GaugeWatch {
  let peak = -Infinity;
  const sampler = { stopped: false };
  const sample = async () => {
    peak = Math.max(peak, await metric(server, name));
  };
  const sampling = (async () => {
    while (!sampler.stopped) {
      await sample();
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    stop: async () => {
      sampler.stopped = true;
      await sampling;
      await sample();
      return peak;
    },
  };
}
