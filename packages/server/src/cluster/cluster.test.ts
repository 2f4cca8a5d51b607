/**
 * Several real server processes on one PostgreSQL schema and one Redis
 * (`--redis`): delivery between every pair of nodes, a device moving between
 * nodes, a node killed in the middle of a stream, Redis lost and back, and
 * one-time prekeys and rate limits shared by every node.
 *
 * Receivers here behave as the SDK does: they acknowledge what they get,
 * show an envelope id once however often it comes, and connect to another
 * node when theirs goes away.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CloseCode } from '../errors.js';
import { engineCases, freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../../testing/server.js';
import { http, TestAccount, to, type Connection, type TestDevice } from '../../../../testing/device.js';
import { RelayParty } from '../../../../testing/provisioning.js';
import { PrivateRedis, redisAvailable, redisTitle, redisUrl } from '../../../../testing/redis.js';

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const postgres = engineCases.find((c) => c.engine === 'postgres')!;
const available = postgres.available && redisAvailable;
const title = `a cluster on ${postgres.title} and ${redisTitle}`;

/** Waits until `done()` holds, polling; throws `what` at the deadline. */
async function until(done: () => boolean | Promise<boolean>, what: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`within ${timeoutMs} ms: ${what()}`);
    await sleep(50);
  }
}

/** Starts `count` nodes on `storage` and `redis`: the first alone (it migrates the schema), then the others. */
async function startNodes(storage: Storage, redis: string, count: number): Promise<ServerProcess[]> {
  const first = await spawnServer(storage, ['--redis', redis]);
  const others = await Promise.all(Array.from({ length: count - 1 }, () => spawnServer(storage, ['--redis', redis])));
  return [first, ...others];
}

/**
 * `count` nodes on fresh PostgreSQL storage and the Redis at `redis()`,
 * started before the enclosing suite's tests and stopped after them; the
 * array is filled in place, so it can be handed out before they start.
 */
function useCluster(count: number, redis: () => string = () => redisUrl): ServerProcess[] {
  const nodes: ServerProcess[] = [];
  let storage: Storage | undefined;
  beforeAll(async () => {
    if (!available) return;
    storage = await freshStorage('postgres');
    nodes.push(...(await startNodes(storage, redis(), count)));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await storage?.drop();
  });
  return nodes;
}

/**
 * Connects `device` to the first node that takes it, from `nodes` in turn,
 * as a client with a list of servers does (a killed node may not be known
 * dead yet: its port refuses). Throws after 10 s.
 */
async function connectAnywhere(device: TestDevice, nodes: readonly ServerProcess[]): Promise<Connection> {
  const deadline = Date.now() + 10_000;
  for (let i = 0; ; i++) {
    try {
      return await device.connect(nodes[i % nodes.length]!.wsUrl);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

/**
 * A device that receives as the SDK does (ack, show each envelope id once)
 * and, when its node goes away, connects to the next running one.
 */
class Inbox {
  /** Bodies in the order shown. */
  readonly shown: string[] = [];
  /** Connections opened after the first. */
  moves = 0;
  /** Why moving to another node failed, if it did. */
  failure: unknown;
  readonly #seen = new Set<number>();
  readonly #device: TestDevice;
  readonly #nodes: readonly ServerProcess[];
  #connection: Connection | undefined;
  #closing = false;

  private constructor(device: TestDevice, nodes: readonly ServerProcess[]) {
    this.#device = device;
    this.#nodes = nodes;
  }

  /** Connects `device` to `node` and waits for `drained`. */
  static async open(device: TestDevice, node: ServerProcess, nodes: readonly ServerProcess[]): Promise<Inbox> {
    const inbox = new Inbox(device, nodes);
    await inbox.#attach(node);
    await inbox.#connection!.next('drained');
    return inbox;
  }

  /** The open connection (sends share it: a second connection of the device would replace it). */
  get connection(): Connection {
    return this.#connection!;
  }

  /** How many times `body` was shown. */
  count(body: string): number {
    return this.shown.filter((b) => b === body).length;
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#connection?.close();
  }

  async #attach(node: ServerProcess): Promise<void> {
    this.#use(await this.#device.connect(node.wsUrl));
  }

  #use(connection: Connection): void {
    this.#connection = connection;
    connection.onFrames(() => {
      this.#take(connection);
    });
    this.#take(connection);
    void connection.closed.then(() => this.#move());
  }

  #take(connection: Connection): void {
    const envelopes = connection.takeAll('envelope').map((f) => f.envelope);
    for (const envelope of envelopes) {
      if (this.#seen.has(envelope.id)) continue;
      this.#seen.add(envelope.id);
      this.shown.push(read(envelope.body));
    }
    if (envelopes.length > 0) connection.ack(envelopes.map((e) => e.id));
  }

  async #move(): Promise<void> {
    if (this.#closing) return;
    this.moves++;
    try {
      this.#use(await connectAnywhere(this.#device, this.#nodes));
    } catch (error) {
      this.failure = error; // the test's wait for its envelopes fails, saying so
    }
  }
}

/**
 * Sends numbered messages one at a time from `device`, counting those the
 * server acknowledged (`sent`); when its node goes away it connects to the
 * next running one and goes on. A send left unanswered by a dead node is not
 * sent again: it may or may not have been stored, so it is not counted.
 */
class Stream {
  readonly acked: string[] = [];
  moves = 0;

  constructor(
    readonly device: TestDevice,
    readonly nodes: readonly ServerProcess[],
  ) {}

  async run(start: ServerProcess, recipients: readonly TestAccount[], count: number, pauseMs: number): Promise<void> {
    let connection = await this.device.connect(start.wsUrl);
    for (let i = 0; i < count; i++) {
      const body = `${this.device.username} #${i}`;
      try {
        const answer = await connection.request(recipients.map((r) => to(r, () => text(body))));
        if (answer.kind !== 'sent') throw new Error(`${body} refused: ${answer.code} ${answer.message}`);
        this.acked.push(body);
      } catch (error) {
        if (connection.socket.readyState === connection.socket.OPEN) throw error;
        this.moves++;
        connection = await connectAnywhere(this.device, this.nodes);
      }
      await sleep(pauseMs);
    }
    await connection.close();
  }
}

/** Every acked body of `streams`, and for each inbox the bodies it did not show exactly once. */
function notExactlyOnce(streams: readonly Stream[], inboxes: readonly Inbox[]): string[] {
  const acked = streams.flatMap((s) => s.acked);
  return inboxes.flatMap((inbox, i) => [
    ...(inbox.failure === undefined ? [] : [`inbox ${i} could not move: ${inbox.failure instanceof Error ? inbox.failure.message : JSON.stringify(inbox.failure)}`]),
    ...acked.filter((body) => inbox.count(body) !== 1).map((body) => `inbox ${i}: ${body} ×${inbox.count(body)}`),
  ]);
}

describe(title, () => {
  describe('three nodes', () => {
    const nodes = useCluster(3);
    let counter = 0;
    const name = (prefix: string) => `${prefix}_${++counter}`;

    it.skipIf(!available)('delivers between every pair of nodes, live, to devices spread across them', async () => {
      // Three people per node; each sends one message to every other person, on their node or another.
      const people = await Promise.all(Array.from({ length: 9 }, () => TestAccount.register(nodes[0]!.url, name('p'))));
      const home = (i: number) => nodes[i % 3]!;
      const inboxes = await Promise.all(people.map((p, i) => Inbox.open(p.devices[0]!, home(i), nodes)));
      await Promise.all(
        inboxes.map(async (inbox, i) => {
          for (const [j, recipient] of people.entries()) {
            if (j === i) continue;
            const answer = await inbox.connection.request([to(recipient, () => text(`from ${i} to ${j}`))]);
            expect(answer.kind).toBe('sent');
          }
        }),
      );
      const expected = (j: number) => people.map((_, i) => `from ${i} to ${j}`).filter((_, i) => i !== j);
      await until(
        () => inboxes.every((inbox, j) => expected(j).every((body) => inbox.count(body) === 1)),
        () => `every message shown once; missing: ${inboxes.flatMap((inbox, j) => expected(j).filter((b) => inbox.count(b) !== 1)).join(', ')}`,
        15_000,
      );
      for (const [j, inbox] of inboxes.entries()) expect([...inbox.shown].sort()).toEqual(expected(j).sort());
      await Promise.all(inboxes.map((inbox) => inbox.close()));
    });

    it.skipIf(!available)('a device connecting on another node replaces its older connection there (4409), and receives there', async () => {
      const alice = await TestAccount.register(nodes[0]!.url, name('alice'));
      const bob = await TestAccount.register(nodes[0]!.url, name('bob'));
      const older = await bob.devices[0]!.connect(nodes[0]!.wsUrl);
      await older.next('drained');
      const newer = await bob.devices[0]!.connect(nodes[1]!.wsUrl);
      await newer.next('drained');
      const closed = await Promise.race([older.closed, sleep(10_000).then(() => undefined)]);
      expect(closed?.code).toBe(CloseCode.REPLACED);
      expect(newer.socket.readyState).toBe(newer.socket.OPEN);

      const sender = await alice.devices[0]!.connect(nodes[2]!.wsUrl);
      expect((await sender.request([to(bob, () => text('after the move'))])).kind).toBe('sent');
      const [envelope] = await newer.envelopes(1);
      expect(read(envelope!.body)).toBe('after the move');
      await Promise.all([sender.close(), newer.close()]);
    });

    it.skipIf(!available)('of two connections of a device opened at once on two nodes, exactly one stays, and it receives', async () => {
      const alice = await TestAccount.register(nodes[0]!.url, name('alice'));
      const bob = await TestAccount.register(nodes[0]!.url, name('bob'));
      const sender = await alice.devices[0]!.connect(nodes[2]!.wsUrl);
      for (let race = 0; race < 5; race++) {
        const both = await Promise.all([0, 1].map((i) => bob.devices[0]!.connect(nodes[i]!.wsUrl)));
        const open = () => both.filter((c) => c.socket.readyState === c.socket.OPEN);
        await until(() => open().length === 1, () => `race ${race}: one connection left open, not ${open().length}`, 10_000);
        const survivor = open()[0]!;
        expect((await sender.request([to(bob, () => text(`race ${race}`))])).kind).toBe('sent');
        const envelopes = await survivor.envelopes(1);
        expect(read(envelopes[0]!.body)).toBe(`race ${race}`);
        survivor.ack(envelopes.map((e) => e.id));
        await survivor.close();
      }
      await sender.close();
    });

    it.skipIf(!available)('a device linked through one node is known at once to a sender on another', async () => {
      const alice = await TestAccount.register(nodes[0]!.url, name('alice'));
      const bob = await TestAccount.register(nodes[0]!.url, name('bob'));
      const sender = await alice.devices[0]!.connect(nodes[2]!.wsUrl);
      expect((await sender.request([to(bob, () => text('one device'))])).kind).toBe('sent'); // node 2 caches bob
      await bob.link(bob.devices[0]!); // through node 0

      // The news reaches node 2 through Redis, a moment after the link's answer: until then a send may be refused.
      let answer = await sender.request([to(bob, () => text('two devices'))]);
      const deadline = Date.now() + 5_000;
      while (answer.kind === 'refused' && answer.code === 'DEVICE_MISMATCH' && Date.now() < deadline) {
        await sleep(100);
        answer = await sender.request([to(bob, () => text('two devices'))]);
      }
      expect(answer.kind).toBe('sent');
      await sender.close();
    });

    it.skipIf(!available)('a device removed through one node loses its connection on another (4401)', async () => {
      const bob = await TestAccount.register(nodes[0]!.url, name('bob'));
      const phone = bob.devices[0]!;
      const laptop = await bob.link(phone);
      const connection = await laptop.connect(nodes[1]!.wsUrl);
      await connection.next('drained');
      const deviceList = await bob.sign([phone.entry()], bob.version + 1);
      const removed = await http(nodes[0]!.url, 'PUT', '/v1/devices', { token: await phone.login(), body: { deviceList } });
      expect(removed.status).toBe(200);
      const closed = await Promise.race([connection.closed, sleep(10_000).then(() => undefined)]);
      expect(closed?.code).toBe(CloseCode.UNAUTHORIZED);
    });

    it.skipIf(!available)('relays device linking between parties on different nodes, both ways, in order, and closes both at the end', async () => {
      const creator = await RelayParty.open(nodes[0]!.url);
      const address = await creator.create();
      const joiner = await RelayParty.open(nodes[1]!.url);
      joiner.send({ kind: 'join', address });
      joiner.send({ kind: 'message', body: text('sent right behind the join') }); // allowed before joined (API.md §6.3)
      await joiner.next('joined');
      await creator.next('joined');
      expect((await creator.messages(1)).map(read)).toEqual(['sent right behind the join']);
      for (let i = 0; i < 5; i++) creator.send({ kind: 'message', body: text(`to the joiner ${i}`) });
      expect((await joiner.messages(5)).map(read)).toEqual([0, 1, 2, 3, 4].map((i) => `to the joiner ${i}`));
      await joiner.close();
      expect((await creator.closed).code).toBe(CloseCode.NORMAL);

      // A second joiner for a channel no node holds any more is told so, as on one node.
      const late = await RelayParty.open(nodes[2]!.url);
      late.send({ kind: 'join', address });
      expect((await late.closed).code).toBe(CloseCode.NO_SUCH_CHANNEL);
    });

    it.skipIf(!available)('hands each one-time prekey out once to concurrent fetches through different nodes', async () => {
      const bob = await TestAccount.register(nodes[0]!.url, name('bob'));
      await bob.devices[0]!.uploadPreKeys(30);
      const requesters = await Promise.all(Array.from({ length: 5 }, () => TestAccount.register(nodes[0]!.url, name('fetcher'))));
      const tokens = await Promise.all(requesters.map((r) => r.devices[0]!.login()));
      type Bundle = { devices: { preKey?: { keyId: number }; kyberPreKey: { keyId: number } }[] };
      // 50 fetches (10 per requester, the per-target burst) at once, spread over the nodes, for 30 keys of each kind.
      const fetches = tokens.flatMap((token, r) =>
        Array.from({ length: 10 }, (_, i) => http<Bundle>(nodes[(r + i) % 3]!.url, 'GET', `/v1/keys/${bob.username}/1`, { token })),
      );
      const results = await Promise.all(fetches);
      expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
      const preKeys = results.flatMap((r) => r.body.devices.flatMap((d) => (d.preKey === undefined ? [] : [d.preKey.keyId])));
      const kyberKeys = results.flatMap((r) => r.body.devices.map((d) => d.kyberPreKey.keyId)).filter((id) => id !== 1); // 1: the last-resort key
      expect(new Set(preKeys).size).toBe(preKeys.length);
      expect(new Set(kyberKeys).size).toBe(kyberKeys.length);
      expect(preKeys.length).toBe(30);
      expect(kyberKeys.length).toBe(30);
    });

    it.skipIf(!available)('holds a rate limit across nodes: the per-target burst is one, wherever the fetches go', async () => {
      const bob = await TestAccount.register(nodes[0]!.url, name('bob'));
      const carol = await TestAccount.register(nodes[0]!.url, name('carol'));
      const token = await carol.devices[0]!.login();
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) statuses.push((await http(nodes[i % 3]!.url, 'GET', `/v1/keys/${bob.username}/1`, { token })).status);
      // Per node, each would have allowed 10 of its 4; shared, the burst of 10 is spent by the 10th fetch.
      expect(statuses).toEqual([...Array<number>(10).fill(200), 429, 429]);
    });
  });

  describe('a node killed in the middle of a stream', () => {
    const nodes = useCluster(3);

    it.skipIf(!available)('loses nothing: its clients move to the other nodes, and every acked message is shown exactly once', async () => {
      // Accounts are made through node 2, which stays up: HTTP is stateless, only the WebSockets are tied to a node.
      const senders = await Promise.all([0, 1, 2].map((i) => TestAccount.register(nodes[2]!.url, `sender_${i}`)));
      const receivers = await Promise.all([0, 1, 2].map((i) => TestAccount.register(nodes[2]!.url, `receiver_${i}`)));
      const inboxes = await Promise.all(receivers.map((r, i) => Inbox.open(r.devices[0]!, nodes[i]!, nodes)));
      const streams = senders.map((s) => new Stream(s.devices[0]!, nodes));
      const streaming = streams.map((stream, i) => stream.run(nodes[i]!, receivers, 40, 15));

      await until(
        () => streams.reduce((n, s) => n + s.acked.length, 0) >= 40,
        () => 'a third of the stream acked',
      );
      await nodes[0]!.kill();
      await Promise.all(streaming);

      await until(
        () => notExactlyOnce(streams, inboxes).length === 0,
        () => `every acked message shown exactly once; not so: ${notExactlyOnce(streams, inboxes).slice(0, 10).join(', ')}`,
      );
      expect(streams[0]!.moves + inboxes[0]!.moves).toBeGreaterThanOrEqual(2); // node 0's sender and receiver both moved
      expect(streams.reduce((n, s) => n + s.acked.length, 0)).toBeGreaterThanOrEqual(117); // at most one send per sender unanswered
      for (const inbox of inboxes) expect(new Set(inbox.shown).size).toBe(inbox.shown.length);
      await Promise.all(inboxes.map((inbox) => inbox.close()));
    });
  });

  describe('Redis lost and back in the middle of a stream', () => {
    let redis: PrivateRedis | undefined;
    // Hooks run as a stack: this Redis starts before the nodes and is killed after they stop.
    beforeAll(async () => {
      if (available) redis = await PrivateRedis.start();
    });
    afterAll(async () => {
      await redis?.kill();
    });
    const nodes = useCluster(2, () => redis!.url);

    const clusterState = async (node: ServerProcess) => (await http<{ cluster?: string }>(node.url, 'GET', '/healthz')).body.cluster;

    it.skipIf(!available)('loses nothing, delivers meanwhile by polling, and goes back to wake-ups when Redis returns', async () => {
      const sender = await TestAccount.register(nodes[0]!.url, 'sender');
      const receivers = await Promise.all([0, 1].map((i) => TestAccount.register(nodes[0]!.url, `receiver_${i}`)));
      const inboxes = await Promise.all(receivers.map((r, i) => Inbox.open(r.devices[0]!, nodes[i]!, nodes)));
      const stream = new Stream(sender.devices[0]!, nodes);
      const streaming = stream.run(nodes[0]!, receivers, 60, 50);

      await until(() => stream.acked.length >= 20, () => 'a third of the stream acked');
      await redis!.kill();
      await until(() => stream.acked.length >= 40, () => 'two thirds of the stream acked');
      const states = await Promise.all(nodes.map(clusterState));
      expect(states).toEqual(['degraded', 'degraded']);
      // Sent while Redis is away, to a device on the other node: the poll brings it.
      const duringOutage = stream.acked.at(-1)!;
      await until(() => inboxes[1]!.count(duringOutage) === 1, () => `${duringOutage} shown during the outage`);

      await redis!.restart();
      await streaming;
      await until(async () => (await Promise.all(nodes.map(clusterState))).every((s) => s === 'connected'), () => 'both nodes connected to Redis again');
      await until(
        () => notExactlyOnce([stream], inboxes).length === 0,
        () => `every acked message shown exactly once; not so: ${notExactlyOnce([stream], inboxes).slice(0, 10).join(', ')}`,
      );
      expect(stream.acked.length).toBe(60);
      await Promise.all(inboxes.map((inbox) => inbox.close()));
    });

    it.skipIf(!available)('a node started before its Redis serves, degraded, and joins the cluster once Redis is up', async () => {
      const early = await PrivateRedis.reserve();
      const own = await freshStorage('postgres');
      const node = await spawnServer(own, ['--redis', early.url]);
      try {
        expect(await clusterState(node)).toBe('degraded');
        const alice = await TestAccount.register(node.url, 'alice'); // served meanwhile
        await early.restart();
        await until(async () => (await clusterState(node)) === 'connected', () => 'the node connected to Redis');
        const inbox = await Inbox.open(alice.devices[0]!, node, [node]);
        await inbox.close();
      } finally {
        await node.stop();
        await early.kill();
        await own.drop();
      }
    });
  });
});
