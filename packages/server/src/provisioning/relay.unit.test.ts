/**
 * The provisioning relay's state machine, driven directly: stand-in sockets
 * and a clock of the test's own, so that lifetimes, timeouts, the heartbeat
 * and the caps are checked without waiting for them. relay.test.ts covers the
 * same relay behind a real server and real WebSockets.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import {
  decodeProvisioningServerFrame,
  encodeProvisioningClientFrame,
  type ProvisioningClientFrame,
  type ProvisioningServerFrame,
} from '@parley/protocol';

import { CloseCode } from '../errors.js';
import { AUTH_TIMEOUT_MS, MAX_OPEN_CHANNELS, MAX_PROVISIONING_MESSAGES, PROVISIONING_LIFETIME_MS, PROVISIONING_LIMITS } from '../limits.js';
import { createLogger } from '../log.js';
import { createMetrics } from '../metrics.js';
import { RateLimiter } from '../rateLimit.js';
import { ProvisioningRelay, type RelayDeps, type RelaySocket, type Schedule } from './relay.js';

const OPEN = 1;
const CLOSED = 3;

/** A WebSocket as the relay sees it, recording what the relay does to it. */
class FakeSocket extends EventEmitter implements RelaySocket {
  readyState = OPEN;
  readonly received: ProvisioningServerFrame[] = [];
  closedWith: { code: number; reason: string } | undefined;
  terminated = false;
  paused = false;
  pings = 0;
  /** When false, sends stay "unwritten" until `flush`. */
  writes = true;
  /** When true, `close` starts the handshake but the peer never finishes it. */
  lingers = false;
  readonly #unwritten: (() => void)[] = [];

  send(data: Uint8Array, callback: (error?: Error) => void): void {
    this.received.push(decodeProvisioningServerFrame(data));
    if (this.writes) callback();
    else this.#unwritten.push(() => { callback(); });
  }

  flush(): void {
    for (const write of this.#unwritten.splice(0)) write();
  }

  close(code: number, reason: string): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = { code, reason };
    if (!this.lingers) this.#gone();
  }

  terminate(): void {
    this.terminated = true;
    this.#gone();
  }

  ping(): void {
    this.pings++;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** The client sends a frame. */
  deliver(frame: ProvisioningClientFrame): void {
    this.emit('message', Buffer.from(encodeProvisioningClientFrame(frame)), true);
  }

  /** The client goes away. */
  hangUp(): void {
    this.#gone();
  }

  #gone(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.emit('close');
  }

  get code(): number | undefined {
    return this.closedWith?.code;
  }

  kinds(): string[] {
    return this.received.map((f) => f.kind);
  }
}

/** Timers that run only when the test moves the time on. */
class Clock {
  now = 0;
  readonly #timers = new Set<{ at: number; run: () => void }>();

  readonly schedule: Schedule = (ms, run) => {
    const timer = { at: this.now + ms, run };
    this.#timers.add(timer);
    return () => {
      this.#timers.delete(timer);
    };
  };

  advance(ms: number): void {
    this.now += ms;
    for (const timer of [...this.#timers].sort((a, b) => a.at - b.at)) {
      if (timer.at <= this.now && this.#timers.delete(timer)) timer.run();
    }
  }
}

const metrics = createMetrics({ writeQueue: () => 0, inflight: () => 0, unsent: () => 0, stored: async () => 0 });
const log = createLogger('silent');

function setup(overrides: Partial<RelayDeps> = {}) {
  const clock = new Clock();
  const relay = new ProvisioningRelay({
    randomBytes: (length) => new Uint8Array(randomBytes(length)),
    limiter: new RateLimiter(PROVISIONING_LIMITS, () => clock.now),
    clientAddress: () => 'unused',
    metrics,
    log,
    schedule: clock.schedule,
    ...overrides,
  });
  let clients = 0;
  /** A new socket, from a client address of its own unless given one. */
  const connect = (client = `client-${++clients}`) => {
    const socket = new FakeSocket();
    relay.accept(socket, client);
    return socket;
  };
  const create = () => {
    const a = connect();
    a.deliver({ kind: 'create' });
    const frame = a.received[0];
    if (frame?.kind !== 'address') throw new Error(`no address: ${a.kinds().join()} ${JSON.stringify(a.closedWith)}`);
    return { a, address: frame.address };
  };
  const pair = () => {
    const { a, address } = create();
    const b = connect();
    b.deliver({ kind: 'join', address });
    expect([a.kinds(), b.kinds()]).toEqual([['address', 'joined'], ['joined']]);
    return { a, b, address };
  };
  return { clock, relay, connect, create, pair };
}

const body = (n: number) => Uint8Array.of(n & 0xff, n >> 8);

describe('provisioning relay state machine', () => {
  it('closes both parties with 4410 when the channel reaches its lifetime, and forgets it', () => {
    const { clock, relay, connect, create, pair } = setup();
    const { a, b, address } = pair();
    const lonely = create();
    clock.advance(PROVISIONING_LIFETIME_MS - 1);
    expect([a.code, b.code, lonely.a.code]).toEqual([undefined, undefined, undefined]);
    clock.advance(1);
    for (const socket of [a, b, lonely.a]) expect(socket.closedWith).toEqual({ code: CloseCode.CHANNEL_EXPIRED, reason: 'the channel expired' });
    expect(relay.openChannels).toBe(0);
    const late = connect();
    late.deliver({ kind: 'join', address });
    expect(late.code).toBe(CloseCode.NO_SUCH_CHANNEL);
  });

  it('counts the lifetime from create, not from join', () => {
    const { clock, create, connect } = setup();
    const { a, address } = create();
    clock.advance(PROVISIONING_LIFETIME_MS - 1_000);
    const b = connect();
    b.deliver({ kind: 'join', address });
    clock.advance(1_000);
    expect([a.code, b.code]).toEqual([CloseCode.CHANNEL_EXPIRED, CloseCode.CHANNEL_EXPIRED]);
  });

  it('closes a socket that sends no create or join within AUTH_TIMEOUT_MS with 4408, and only such a socket', () => {
    const { clock, connect, create } = setup();
    const silent = connect();
    const { a } = create();
    clock.advance(AUTH_TIMEOUT_MS);
    expect(silent.closedWith).toEqual({ code: CloseCode.AUTH_TIMEOUT, reason: 'no create or join frame in time' });
    expect(a.code).toBeUndefined();
  });

  it(`refuses a create beyond MAX_OPEN_CHANNELS (${MAX_OPEN_CHANNELS}) with 1013, and accepts again once a channel ends`, () => {
    const { relay, connect, create } = setup();
    const creators = Array.from({ length: MAX_OPEN_CHANNELS }, () => create().a);
    expect(relay.openChannels).toBe(MAX_OPEN_CHANNELS);
    const refused = connect();
    refused.deliver({ kind: 'create' });
    expect(refused.code).toBe(CloseCode.TRY_AGAIN_LATER);
    creators[0]!.hangUp();
    expect(relay.openChannels).toBe(MAX_OPEN_CHANNELS - 1);
    expect(create().a.code).toBeUndefined();
  });

  it(`relays MAX_PROVISIONING_MESSAGES (${MAX_PROVISIONING_MESSAGES}) messages in order, and closes both with 4422 at the next`, () => {
    const { relay, pair } = setup();
    const { a, b } = pair();
    for (let i = 0; i < MAX_PROVISIONING_MESSAGES; i++) (i % 2 === 0 ? a : b).deliver({ kind: 'message', body: body(i) });
    const bodies = (socket: FakeSocket) => socket.received.flatMap((f) => (f.kind === 'message' ? [[...f.body]] : []));
    const sent = (parity: number) => Array.from({ length: MAX_PROVISIONING_MESSAGES / 2 }, (_, j) => [...body(2 * j + parity)]);
    expect(bodies(b)).toEqual(sent(0));
    expect(bodies(a)).toEqual(sent(1));
    expect([a.code, b.code]).toEqual([undefined, undefined]);
    a.deliver({ kind: 'message', body: body(0) });
    expect([a.code, b.code]).toEqual([CloseCode.LIMIT_EXCEEDED, CloseCode.LIMIT_EXCEEDED]);
    expect(bodies(b)).toHaveLength(MAX_PROVISIONING_MESSAGES / 2);
    expect(relay.openChannels).toBe(0);
  });

  it('stops reading a party while the other has more than MAX_PROVISIONING_UNSENT_BYTES unwritten, and reads it again once written', () => {
    const { pair } = setup();
    const { a, b } = pair();
    b.writes = false;
    const mib = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 4; i++) a.deliver({ kind: 'message', body: mib }); // 4 MiB of bodies, plus framing: just over
    expect(a.paused).toBe(true);
    expect(b.paused).toBe(false);
    b.flush();
    expect(a.paused).toBe(false);
    // Three are not enough to stop it.
    for (let i = 0; i < 3; i++) a.deliver({ kind: 'message', body: mib });
    expect(a.paused).toBe(false);
    b.flush();
  });

  it('drops a socket silent through a heartbeat interval, and its channel with it', () => {
    const { relay, pair } = setup();
    const { a, b } = pair();
    relay.heartbeat();
    expect([a.pings, b.pings]).toEqual([1, 1]);
    a.emit('pong');
    relay.heartbeat();
    expect(b.terminated).toBe(true);
    expect(a.terminated).toBe(false);
    expect(a.closedWith).toEqual({ code: CloseCode.NORMAL, reason: 'the other party left' });
    expect(relay.openChannels).toBe(0);
  });

  it('counts any frame as a sign of life', () => {
    const { relay, pair } = setup();
    const { a, b } = pair();
    relay.heartbeat();
    a.deliver({ kind: 'message', body: body(1) });
    b.emit('pong');
    relay.heartbeat();
    expect([a.terminated, b.terminated]).toEqual([false, false]);
  });

  it('closes every socket with 1001 on shutdown, both parties alike, and terminates those that do not answer in time', async () => {
    const { clock, relay, connect, create, pair } = setup();
    const { a, b } = pair();
    const waiting = create().a;
    const fresh = connect();
    fresh.lingers = true;
    const done = relay.close(2_000);
    for (const socket of [a, b, waiting, fresh]) expect(socket.closedWith).toEqual({ code: CloseCode.GOING_AWAY, reason: 'server shutting down' });
    expect(fresh.terminated).toBe(false);
    clock.advance(2_000);
    await done;
    expect(fresh.terminated).toBe(true);
    expect(relay.openChannels).toBe(0);
  });

  it('confines a failure while handling a frame to its socket (1011)', () => {
    let failing = false;
    const { connect, pair } = setup({
      randomBytes: (length) => {
        if (failing) throw new Error('no randomness today');
        return new Uint8Array(randomBytes(length));
      },
    });
    const { a, b } = pair();
    failing = true;
    const unlucky = connect();
    unlucky.deliver({ kind: 'create' });
    expect(unlucky.closedWith).toEqual({ code: CloseCode.INTERNAL, reason: 'internal error' });
    a.deliver({ kind: 'message', body: body(5) });
    expect(b.kinds()).toEqual(['joined', 'message']);
  });

  it('rate-limits create and join from one client address, and refills with time', () => {
    const { clock, connect, create } = setup();
    const { address } = create();
    for (let i = 0; i < PROVISIONING_LIMITS.burst; i++) connect('one').deliver({ kind: 'create' });
    const refused = connect('one');
    refused.deliver({ kind: 'join', address });
    expect(refused.closedWith).toEqual({ code: CloseCode.RATE_LIMITED, reason: 'too many channels from this address; retry in 10 s' });
    clock.advance(1_000 / PROVISIONING_LIMITS.perSecond);
    const later = connect('one');
    later.deliver({ kind: 'join', address });
    expect(later.kinds()).toEqual(['joined']);
  });
});
