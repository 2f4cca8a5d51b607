/**
 * Several server nodes on one PostgreSQL, told of each other's changes
 * through Redis pub/sub (`--redis`). PostgreSQL holds every envelope; Redis
 * holds nothing durable and carries only wake-ups, so losing it, or any
 * message on it, delays delivery and loses nothing.
 *
 * Channels and what is said on them (`<node>` is a random id per process;
 * `<ns>` is made once per database and kept in it, so that the nodes of one
 * deployment share it and two deployments on one Redis never hear each other):
 *
 *   parley:<ns>:dev:<account>:<device>  subscribed by the node holding the device's connection
 *     wake <node>                   envelopes were committed for the mailbox: read it
 *     claim <node> <at> <serial>    the device connected on <node> at <at> (ms): the newer connection wins
 *     evict <node>                  the device was removed: close its connection
 *   parley:<ns>:accounts                subscribed by every node
 *     changed <node> <account>      forget the cached account (devices linked or removed)
 *
 * Wakes are published after the commit, so a node that reads the mailbox on
 * a wake sees the envelopes. A new connection subscribes first, then claims,
 * then reads its mailbox, so a commit is either seen by that read or wakes it.
 *
 * Takeover: two connections of one device on two nodes (a reconnect race)
 * both publish their claim; a node that hears a newer claim (later `at`, ties
 * broken by node id) closes its own connection with 4409, and one that hears
 * an older claim answers with its own, for the node that subscribed too late
 * to hear it. Until then both connections deliver: at least once, and the
 * client drops envelope ids it has seen.
 *
 * Redis down: publishes fail at once (no offline queue), and every node reads
 * the mailboxes of its connected devices every CLUSTER_DEGRADED_POLL_MS. When
 * Redis is back, each node subscribes again, claims its connections again,
 * forgets every cached account (a change may have gone unheard) and reads
 * every mailbox once. A slow sweep (CLUSTER_SWEEP_MS) bounds the delay of a
 * wake lost while Redis seemed up.
 */
import { randomBytes } from 'node:crypto';

import { Redis } from 'ioredis';

import type { DeviceIdentity } from '../auth/tokens.js';
import { CloseCode } from '../errors.js';
import { CLUSTER_DEGRADED_POLL_MS, CLUSTER_SWEEP_MS } from '../limits.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { BucketLimits, Limiter } from '../rateLimit.js';
import type { Cluster, ClusterNode } from './cluster.js';
import { RedisRateLimiter } from './redisRateLimit.js';
import { RedisTunnels } from './redisTunnels.js';

/** When and where a connection of a device opened: of two, the later one wins. */
interface Claim {
  readonly at: number;
  readonly node: string;
  readonly serial: number;
}

/** Whether claim `a` is newer than claim `b`. */
function newer(a: Claim, b: Claim): boolean {
  if (a.at !== b.at) return a.at > b.at;
  if (a.node !== b.node) return a.node > b.node;
  return a.serial > b.serial;
}

/** Reconnects back off up to this (ms): Redis back is noticed within it. */
const MAX_RECONNECT_DELAY_MS = 2_000;

/** Options for both connections: fail fast while Redis is away, never queue. */
const connectionOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  autoResubscribe: false, // resubscribing is #onReady's, which then reads every mailbox
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt: number) => Math.min(attempt * 200, MAX_RECONNECT_DELAY_MS),
} as const;

export interface RedisClusterDeps {
  readonly url: string;
  /** Names this deployment's channels and keys: the same on every node of it, and only there. */
  readonly namespace: string;
  readonly now: () => number;
  readonly log: Logger;
  readonly metrics: Metrics;
}

export class RedisCluster implements Cluster {
  /** Publishes, and runs rate-limit scripts (cluster/redisRateLimit.ts). */
  readonly commands: Redis;
  /** In subscriber mode: hears the channels of this node's devices and the accounts channel. */
  readonly #subscriber: Redis;
  readonly #deps: RedisClusterDeps;
  readonly #accountsChannel: string;
  readonly #nodeId = randomBytes(8).toString('hex');
  /** This node's connections, by device channel. */
  readonly #claims = new Map<string, { readonly mailbox: DeviceIdentity; readonly claim: Claim }>();
  /** Other channels this node hears (the provisioning relay's, through `listen`), with their handlers. */
  readonly #handlers = new Map<string, (message: Buffer) => void>();
  #node: ClusterNode | undefined;
  #serial = 0;
  /** Set once subscribed after the last (re)connection; cleared when the subscriber's link drops. */
  #listening = false;
  #outageLogged = false;
  #lastSweep = 0;
  readonly #poll: NodeJS.Timeout;

  constructor(deps: RedisClusterDeps) {
    this.#deps = deps;
    this.#accountsChannel = this.channel('accounts');
    this.commands = new Redis(deps.url, { ...connectionOptions, enableAutoPipelining: true }); // a commit's wakes leave in one write
    this.#subscriber = new Redis(deps.url, connectionOptions);
    for (const connection of [this.commands, this.#subscriber]) {
      connection.on('error', (error: Error) => {
        this.#outage(error);
      });
    }
    this.#subscriber.on('close', () => {
      this.#listening = false;
    });
    this.#subscriber.on('ready', () => {
      void this.#onReady();
    });
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (!this.#handlers.has(channel)) this.#onMessage(channel, message);
    });
    this.#subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      this.#handlers.get(channel.toString())?.(message);
    });
    this.#poll = setInterval(() => {
      this.#pollIfNeeded();
    }, CLUSTER_DEGRADED_POLL_MS);
    this.#poll.unref();
  }

  /**
   * Connects, once the node is built (its connections are what wakes reach).
   * Resolves when Redis answered or could not be reached: a node starts
   * without Redis, degraded, and connects when it can.
   */
  async start(node: ClusterNode): Promise<void> {
    this.#node = node;
    this.#lastSweep = this.#deps.now();
    await Promise.all(
      [this.commands, this.#subscriber].map((connection) =>
        connection.connect().catch((error: unknown) => {
          this.#outage(error);
        }),
      ),
    );
  }

  /** Names a channel of this deployment's. */
  channel(name: string): string {
    return `parley:${this.#deps.namespace}:${name}`;
  }

  /** Hears `channel` (named by `channel()`), bytes as they were published; resolves once subscribed. */
  async listen(channel: string, handler: (message: Buffer) => void): Promise<void> {
    this.#handlers.set(channel, handler);
    await this.#subscriber.subscribe(channel);
  }

  unlisten(channel: string): void {
    if (!this.#handlers.delete(channel) || !this.#listening) return;
    this.#subscriber.unsubscribe(channel).catch((error: unknown) => {
      this.#outage(error);
    });
  }

  /** Publishes bytes; resolves with how many subscribers heard them (0: no node listens there). */
  publishBytes(channel: string, message: Uint8Array): Promise<number> {
    return this.commands.publish(channel, Buffer.from(message.buffer, message.byteOffset, message.byteLength));
  }

  /** The provisioning relay's way to channels held by other nodes. */
  tunnels(randomBytes: (length: number) => Uint8Array): RedisTunnels {
    return new RedisTunnels(this, randomBytes);
  }

  /** A rate limit whose buckets every node shares. */
  limiter(name: string, limits: BucketLimits): Limiter {
    return new RedisRateLimiter(this.commands, this.channel(`limit:${name}:`), limits, this.#deps.now);
  }

  stored(mailbox: DeviceIdentity): void {
    this.#publish(this.#deviceChannel(mailbox), `wake ${this.#nodeId}`);
  }

  claim(mailbox: DeviceIdentity): void {
    const channel = this.#deviceChannel(mailbox);
    const claim = { at: this.#deps.now(), node: this.#nodeId, serial: ++this.#serial };
    const entry = { mailbox, claim };
    this.#claims.set(channel, entry);
    if (!this.#listening) return; // #onReady subscribes and claims when Redis is back
    this.#subscriber.subscribe(channel).then(
      () => {
        if (this.#claims.get(channel) !== entry) return; // released, or claimed again, meanwhile
        this.#publishClaim(channel, claim);
        this.#node?.listener(mailbox)?.catchUp(); // what was committed before the subscription took
      },
      (error: unknown) => {
        this.#outage(error); // the poll reads the mailbox until Redis is back
      },
    );
  }

  release(mailbox: DeviceIdentity): void {
    const channel = this.#deviceChannel(mailbox);
    this.#claims.delete(channel);
    if (this.#listening) {
      this.#subscriber.unsubscribe(channel).catch((error: unknown) => {
        this.#outage(error);
      });
    }
  }

  evict(mailbox: DeviceIdentity): void {
    this.#publish(this.#deviceChannel(mailbox), `evict ${this.#nodeId}`);
  }

  accountChanged(accountId: number): void {
    this.#publish(this.#accountsChannel, `changed ${this.#nodeId} ${accountId}`);
  }

  async close(): Promise<void> {
    clearInterval(this.#poll);
    this.#node = undefined;
    this.#subscriber.disconnect();
    await this.commands.quit().catch(() => undefined); // after the last wakes are written, when Redis is there to take them
    this.commands.disconnect(); // and stop reconnecting, when it is not
  }

  /** The channel of one device's mailbox. */
  #deviceChannel(mailbox: DeviceIdentity): string {
    return this.channel(`dev:${mailbox.accountId}:${mailbox.deviceId}`);
  }

  /** Whether wakes can reach this node now: both links up and subscribed. */
  get healthy(): boolean {
    return this.#listening && this.commands.status === 'ready';
  }

  /** Redis (re)connected: subscribe to everything again, then catch up on whatever was missed meanwhile. */
  async #onReady(): Promise<void> {
    try {
      await this.#subscriber.subscribe(this.#accountsChannel, ...this.#claims.keys(), ...this.#handlers.keys());
    } catch (error) {
      this.#outage(error);
      return;
    }
    this.#listening = true;
    if (this.#outageLogged) this.#deps.log.info('redis reachable again; catching up');
    this.#outageLogged = false;
    this.#node?.forgetAccounts();
    for (const [channel, { claim }] of this.#claims) this.#publishClaim(channel, claim);
    this.#catchUpAll();
  }

  #onMessage(channel: string, message: string): void {
    const [kind, node, ...rest] = message.split(' ');
    if (node === this.#nodeId || node === undefined) return; // this node's own news: it acted on it already
    if (channel === this.#accountsChannel) {
      const accountId = Number(rest[0]);
      if (kind === 'changed' && Number.isSafeInteger(accountId)) this.#node?.forgetAccount(accountId);
      return;
    }
    const entry = this.#claims.get(channel);
    const listener = entry === undefined ? undefined : this.#node?.listener(entry.mailbox);
    if (entry === undefined || listener === undefined) return;
    switch (kind) {
      case 'wake':
        listener.catchUp();
        return;
      case 'evict':
        listener.end(CloseCode.UNAUTHORIZED, 'this device was removed');
        return;
      case 'claim': {
        const other = { at: Number(rest[0]), node, serial: Number(rest[1]) };
        if (newer(other, entry.claim)) listener.end(CloseCode.REPLACED, 'replaced by a newer connection');
        else this.#publishClaim(channel, entry.claim); // the older one's node may not have heard ours
        return;
      }
    }
  }

  #publishClaim(channel: string, claim: Claim): void {
    this.#publish(channel, `claim ${claim.node} ${claim.at} ${claim.serial}`);
  }

  /** Publishes, or counts the failure: the poll and the sweep make up for a lost wake. */
  #publish(channel: string, message: string): void {
    this.commands.publish(channel, message).catch((error: unknown) => {
      this.#outage(error);
    });
  }

  /** Reads every connected device's mailbox while Redis is away, and now and then anyway. */
  #pollIfNeeded(): void {
    const now = this.#deps.now();
    if (this.healthy && now - this.#lastSweep < CLUSTER_SWEEP_MS) return;
    this.#lastSweep = now;
    this.#catchUpAll();
  }

  #catchUpAll(): void {
    for (const listener of this.#node?.listeners() ?? []) listener.catchUp();
  }

  /** Counts a Redis failure, and logs the first of an outage. */
  #outage(error: unknown): void {
    this.#deps.metrics.errors.inc({ code: 'REDIS' });
    if (this.#outageLogged) return;
    this.#outageLogged = true;
    this.#deps.log.warn({ err: error }, 'redis unreachable; reading mailboxes every few seconds until it is back');
  }
}
