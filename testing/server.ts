/**
 * Real Parley server processes for tests: each runs `parley-server` as its own
 * process (so it can be killed with SIGKILL), on fresh storage of either engine.
 *
 * PostgreSQL is found at PARLEY_TEST_POSTGRES (default
 * postgres://postgres@127.0.0.1:5432/test); each storage is a fresh schema in it. On a
 * machine without PostgreSQL those suites skip, with the reason in their
 * title; CI sets PARLEY_REQUIRE_SERVICES=1, which turns that into a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const serverBin = join(repoRoot, 'packages', 'server', 'bin', 'parley-server.js');

export const postgresUrl = process.env['PARLEY_TEST_POSTGRES'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const postgresProblem = await probePostgres();
if (postgresProblem !== undefined) {
  if (process.env['PARLEY_REQUIRE_SERVICES'] === '1') {
    throw new Error(`PARLEY_REQUIRE_SERVICES=1 but PostgreSQL at ${postgresUrl} is unreachable: ${postgresProblem}`);
  }
  console.warn(`[parley] PostgreSQL at ${postgresUrl} is unreachable (${postgresProblem}): PostgreSQL suites are SKIPPED`);
}

export type EngineName = 'sqlite' | 'postgres';

export interface EngineCase {
  readonly engine: EngineName;
  /** The suite title, saying why it is skipped if it is. */
  readonly title: string;
  readonly available: boolean;
}

/** Both engines, for `describe.each`: the same suite runs against each. */
export const engineCases: readonly EngineCase[] = [
  { engine: 'sqlite', title: 'SQLite', available: true },
  {
    engine: 'postgres',
    title: postgresProblem === undefined ? 'PostgreSQL' : `PostgreSQL (SKIPPED: ${postgresUrl} unreachable)`,
    available: postgresProblem === undefined,
  },
];

/** Fresh, empty storage for one engine: the server arguments that select it, and a cleanup. */
export interface Storage {
  readonly engine: EngineName;
  readonly args: readonly string[];
  /** For PostgreSQL: a URL whose search_path is this storage's schema. */
  readonly url?: string;
  drop(): Promise<void>;
}

export async function freshStorage(engine: EngineName): Promise<Storage> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'parley-test-'));
    return {
      engine,
      args: ['--data', dir],
      drop: async () => {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = `parley_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = new URL(postgresUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    engine,
    args: ['--database', url.toString(), '--pool-size', '8'],
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    },
  };
}

/** How long a graceful stop may take before the process is killed: the server's own shutdown takes well under a second. */
const STOP_TIMEOUT_MS = 15_000;

export interface ServerProcess {
  readonly url: string;
  readonly wsUrl: string;
  readonly process: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** SIGTERM and wait: a graceful shutdown (SIGKILL after STOP_TIMEOUT_MS, and the exit says so). */
  stop(): Promise<number | NodeJS.Signals>;
  /** SIGKILL and wait: a crash. */
  kill(): Promise<number | NodeJS.Signals>;
}

/**
 * Starts `parley-server` on a free port of 127.0.0.1 with the given storage,
 * and resolves once it prints its URL. `nodeArgs` go to node itself (such as
 * `--cpu-prof`, which NODE_OPTIONS does not take); `env` is added to this
 * process's environment (such as a crash point, packages/server/src/faultPoints.ts).
 * @throws if the process exits first (with its output in the message).
 */
export async function spawnServer(
  storage: Storage,
  extraArgs: readonly string[] = [],
  nodeArgs: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, [...nodeArgs, serverBin, '--port', '0', '--log-level', 'warn', '--registrations', '1000000', ...storage.args, ...extraArgs], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve(code ?? signal ?? 'SIGKILL');
    });
  });
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Parley server listening on (\S+)/.exec(output);
      if (match !== null) resolve(match[1]!);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => {
      reject(new Error(`parley-server exited (${code}) before listening:\n${output}`));
    });
  });
  const wait = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  /** A graceful stop that hangs is ended by SIGKILL, so that the caller sees 'SIGKILL' instead of waiting for ever. */
  const stop = async () => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      return await wait('SIGTERM');
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/v1/websocket`,
    process: child,
    output: () => output,
    exited,
    stop,
    kill: () => wait('SIGKILL'),
  };
}

/** The server of one engine's suite, started before its first test; a test may replace it (after a restart, say). */
export interface SuiteServer {
  server: ServerProcess;
  readonly storage: Storage;
}

/**
 * Starts a server on fresh storage of `engineCase.engine` before the
 * enclosing suite's tests (unless the engine is unavailable), and stops it and
 * drops the storage after them.
 */
export function useServer(engineCase: EngineCase, extraArgs: readonly string[] = []): SuiteServer {
  let storage: Storage | undefined;
  let server: ServerProcess | undefined;
  const suite: SuiteServer = {
    get server() {
      if (server === undefined) throw new Error('the suite server runs only inside the suite');
      return server;
    },
    set server(replacement) {
      server = replacement;
    },
    get storage() {
      if (storage === undefined) throw new Error('the suite storage exists only inside the suite');
      return storage;
    },
  };
  beforeAll(async () => {
    if (!engineCase.available) return;
    storage = await freshStorage(engineCase.engine);
    server = await spawnServer(storage, extraArgs);
  });
  afterAll(async () => {
    await server?.stop();
    await storage?.drop();
  });
  return suite;
}
