/**
 * Redis for cluster tests: the machine's (PARLEY_TEST_REDIS, default
 * redis://127.0.0.1:6379), or a private `redis-server` a test may stop and
 * start again (never the machine's, which other suites share).
 *
 * On a machine without Redis those suites skip, with the reason in their
 * title; CI sets PARLEY_REQUIRE_SERVICES=1, which turns that into a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

import { Redis } from 'ioredis';

export const redisUrl = process.env['PARLEY_TEST_REDIS'] ?? 'redis://127.0.0.1:6379';

async function probeRedis(): Promise<string | undefined> {
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    client.disconnect();
  }
}

function probeRedisServer(): string | undefined {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? undefined : 'no redis-server command';
}

const redisProblem = (await probeRedis()) ?? probeRedisServer();
if (redisProblem !== undefined) {
  if (process.env['PARLEY_REQUIRE_SERVICES'] === '1') {
    throw new Error(`PARLEY_REQUIRE_SERVICES=1 but Redis at ${redisUrl} is unusable: ${redisProblem}`);
  }
  console.warn(`[parley] Redis at ${redisUrl} is unusable (${redisProblem}): cluster suites are SKIPPED`);
}

/** Whether Redis (and redis-server, for a private one) is there, and if not, why: for suite titles. */
export const redisAvailable = redisProblem === undefined;
export const redisTitle = redisProblem === undefined ? 'Redis' : `Redis (SKIPPED: ${redisProblem})`;

/** A free TCP port on 127.0.0.1 (free when asked: good enough for a test's own server). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  if (typeof address !== 'object' || address === null) throw new Error('no free port');
  return address.port;
}

/** A private Redis that can be stopped and started again on the same port, keeping nothing on disk. */
export class PrivateRedis {
  readonly url: string;
  readonly #port: number;
  #process: ChildProcess | undefined;

  private constructor(port: number) {
    this.#port = port;
    this.url = `redis://127.0.0.1:${port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = await PrivateRedis.reserve();
    await redis.restart();
    return redis;
  }

  /** A port for a Redis not started yet (`restart` starts it): for a server that starts before its Redis. */
  static async reserve(): Promise<PrivateRedis> {
    return new PrivateRedis(await freePort());
  }

  /** Starts redis-server and resolves once it accepts connections (10 s at most). */
  async restart(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.#port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#process = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`redis-server did not start within 10 s:\n${output}`));
      }, 10_000);
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}):\n${output}`));
      });
    });
  }

  /** SIGKILLs redis-server and waits for it to be gone: an outage, not a shutdown. */
  async kill(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
