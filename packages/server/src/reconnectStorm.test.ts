/**
 * A reconnect storm against a real server process (SECURITY-TESTS rows 23
 * and 26): a crowd of raw devices drops and reopens its connections with
 * random jitter, half of them without a close handshake, while two real
 * clients talk through the same server. The conversation must lose and
 * repeat nothing, the server must keep answering, its memory must stay
 * bounded, and it must hold no connection of the crowd afterwards.
 *
 * Scaled for a 2-core CI machine: CROWD devices rather than the 10,000 a
 * node serves (bench/load measures those), each reconnecting ROUNDS times
 * within about four seconds. Registering and logging a device in costs a few
 * signatures on each side, about 10 ms of CPU, so the crowd is what sets this
 * test's length.
 */
import type { ParleyClient } from '@parley/client';
import { afterAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';

import { Cast, eventually, texts, WAIT_MS } from '../../../testing/clients.js';
import { CROWD_SERVER_ARGS, gatherCrowd, openMember, type Member } from '../../../testing/crowd.js';
import { http } from '../../../testing/device.js';
import { metric, MiB, residentBytes, settled, watchMemory, within } from '../../../testing/faults.js';
import { seededRandom } from '../../../testing/random.js';
import { engineCases, useServer } from '../../../testing/server.js';

const CROWD = 1_000;
const ROUNDS = 3;
/** A member waits up to this long before each reconnect, and stays up to this long once connected. */
const JITTER_MS = 600;
/**
 * What the storm may add to the server's resident memory: the whole crowd
 * connected at once takes about 12 MiB on this server (24 MiB for 2,000), so
 * this is five times that, for the garbage collector's lag. Keeping 20 KiB per
 * reconnect (3,000 of them), or buffering for closed sockets, would not pass.
 * Leaked connections are caught exactly, by the connection gauge at the end.
 */
const GROWTH_BOUND = 64 * MiB;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Closes `socket` gracefully, or drops it without a close frame as a phone losing its network would. */
function leave(socket: WebSocket, abruptly: boolean): Promise<void> {
  return new Promise((resolve) => {
    socket.once('close', () => {
      resolve();
    });
    if (abruptly) socket.terminate();
    else socket.close(1000);
  });
}

/** Every member connects, waits, and leaves ROUNDS times, with seeded jitter; resolves with the failures. */
async function storm(wsUrl: string, crowd: readonly Member[], seed: number): Promise<string[]> {
  const random = seededRandom(seed);
  const failures: string[] = [];
  await Promise.all(
    crowd.map(async (member) => {
      for (let round = 0; round < ROUNDS; round++) {
        await sleep(random() * JITTER_MS);
        try {
          const socket = await openMember(wsUrl, member, WAIT_MS);
          await sleep(random() * JITTER_MS);
          await leave(socket, random() < 0.5);
        } catch (error) {
          failures.push(String(error));
        }
      }
    }),
  );
  return failures;
}

/** Alice texts Bob, one after another, until `done` resolves; resolves with the texts she was told are stored. */
async function chat(alice: ParleyClient, bob: ParleyClient, done: Promise<unknown>): Promise<string[]> {
  const over = settled(done);
  const sent: string[] = [];
  for (let i = 0; !over(); i++) {
    await alice.sendText(bob.username, `storm ${i}`);
    sent.push(`storm ${i}`);
  }
  return sent;
}

/** GET /healthz every 200 ms until `done` resolves; resolves with every status (a hang fails `within`). */
async function probe(url: string, done: Promise<unknown>): Promise<number[]> {
  const over = settled(done);
  const statuses: number[] = [];
  while (!over()) {
    statuses.push((await within(http(url, 'GET', '/healthz'), WAIT_MS, 'an answer to /healthz during the storm')).status);
    await sleep(200);
  }
  return statuses;
}

describe.each(engineCases)('reconnect storm on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase, CROWD_SERVER_ARGS);
  const cast = new Cast(() => suite.server.url);
  afterAll(async () => {
    await cast.close();
  });

  it.skipIf(!available)(
    `${CROWD} devices reconnecting with jitter: a conversation beside them loses and repeats nothing, the server keeps answering within bounded memory`,
    async () => {
      const crowd = await gatherCrowd(suite.server.url, CROWD);
      const alice = await cast.person('alice');
      const bob = await cast.person('bob');
      const before = residentBytes(suite.server.process.pid!);
      const memory = watchMemory(suite.server);

      const storming = storm(suite.server.wsUrl, crowd, 23);
      const [failures, sent, statuses] = await within(
        Promise.all([storming, chat(alice, bob, storming), probe(suite.server.url, storming)]),
        6 * WAIT_MS,
        'the storm to pass',
      );
      const peak = memory.stop();

      expect(failures).toEqual([]);
      expect(statuses.length).toBeGreaterThan(0);
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
      expect(peak - before).toBeLessThan(GROWTH_BOUND);
      expect(sent.length).toBeGreaterThan(0);
      await eventually(`Bob shows all ${sent.length} texts`, async () => (await texts(bob, alice.username)).length >= sent.length);
      expect(await texts(bob, alice.username)).toEqual(sent);
      for (const client of [alice, bob]) expect(await client.undecryptableCount(0)).toBe(0);
      // Every connection of the crowd is gone from the server: only Alice's and Bob's remain.
      await eventually('the server holds only the two clients’ connections', async () => (await metric(suite.server, 'parley_websocket_connections')) === 2);
    },
    180_000,
  );
});
