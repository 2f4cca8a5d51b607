/**
 * The provisioning relay (`/v1/provisioning`): pairs two anonymous WebSockets
 * and passes opaque messages between them, so that a new device and one
 * already linked can run their own end-to-end protocol before the new device
 * has an account. The relay stores nothing, logs nothing about a channel, and
 * cannot read what it relays; what the messages say, and their encryption, is
 * the clients' business.
 *
 *   a socket:  fresh ──create──► waiting ──(another socket joins)──► paired ──► closed
 *              fresh ──join(address)───────────────────────────────► paired ──► closed
 *
 * A channel is named by 16 random bytes (its address), lives at most
 * PROVISIONING_LIFETIME_MS from `create`, relays at most
 * MAX_PROVISIONING_MESSAGES, in order, and ends with the first of its parties
 * to leave, for whatever reason: the other is then closed with 1000. A frame
 * that does not decode, or comes in the wrong state, closes its own socket
 * (4400), and so its channel, and nothing else.
 *
 * Channels live in the memory of the process that created them, and a
 * restart ends them. In a cluster (`tunnels`), a `join` for a channel another
 * node holds is carried there: the joiner's node takes the rate-limit token,
 * then passes the socket's frames, unread, to the channel's node and its
 * answers back, and that node runs the channel as if the socket were its own.
 *
 *   a socket:  fresh ──join(address held elsewhere)──► tunnelled ──► closed
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

import { WebSocket, WebSocketServer, type RawData } from 'ws';

import {
  decodeProvisioningClientFrame,
  encodeProvisioningServerFrame,
  isProtocolError,
  limits as wire,
  PROVISIONING_ADDRESS_LENGTH,
  type ProvisioningServerFrame,
} from '@parley/protocol';

import { closeReason, CloseCode } from '../errors.js';
import {
  AUTH_TIMEOUT_MS,
  MAX_OPEN_CHANNELS,
  MAX_PROVISIONING_MESSAGES,
  MAX_PROVISIONING_UNSENT_BYTES,
  PROVISIONING_LIFETIME_MS,
} from '../limits.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { RateLimiter } from '../rateLimit.js';

/** The path the relay answers WebSocket upgrades on. */
export const PROVISIONING_PATH = '/v1/provisioning';

/** What the relay uses of a WebSocket: `ws`'s, or a test's stand-in. */
export interface RelaySocket {
  readonly readyState: number;
  /** `callback` runs once the bytes are written to the network, or could not be. */
  send(data: Uint8Array, callback: (error?: Error) => void): void;
  close(code: number, reason: string): void;
  terminate(): void;
  ping(): void;
  /** Stops reading the socket (TCP backpressure on the peer) until `resume`. */
  pause(): void;
  resume(): void;
  on(event: 'message', listener: (data: RawData, isBinary: boolean) => void): unknown;
  on(event: 'pong' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** A socket's frames carried to the node that holds its channel, and that node's answers back. */
export interface Tunnel {
  /** Carries one frame, as the client sent it. */
  send(frame: Uint8Array): void;
  /** The local socket closed: the far end closes its side. */
  close(): void;
}

/** The provisioning relay's reach into the other nodes of a cluster (cluster/redisTunnels.ts). */
export interface RelayTunnels {
  /** A channel was created here: other nodes' joiners may come for it, each as a socket handed to `accept`. */
  offer(key: string, accept: (socket: RelaySocket) => void): void;
  /** The channel ended: no more joiners for it. */
  withdraw(key: string): void;
  /**
   * Opens a tunnel to the node holding channel `key`, carrying `join` (the
   * socket's first frame) there first. Resolves with undefined if no node
   * holds the channel; rejects if the other nodes cannot be reached.
   * `toClient` gets each frame the far end sends, `closed` its close.
   */
  connect(key: string, join: Uint8Array, toClient: (frame: Uint8Array) => void, closed: (code: number, reason: string) => void): Promise<Tunnel | undefined>;
}

/** Runs `run` after `ms` milliseconds; the function returned cancels it. */
export type Schedule = (ms: number, run: () => void) => () => void;

const timers: Schedule = (ms, run) => {
  const timer = setTimeout(run, ms);
  timer.unref();
  return () => {
    clearTimeout(timer);
  };
};

export interface RelayDeps {
  /** Cryptographically random bytes, for channel addresses. */
  readonly randomBytes: (length: number) => Uint8Array;
  /** The per-client-address budget for `create` and `join` (PROVISIONING_LIMITS). */
  readonly limiter: RateLimiter;
  /** The client address of an upgrade request (by `--trust-proxy`'s rule): a rate-limit key, never logged. */
  readonly clientAddress: (request: IncomingMessage) => string;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Timers for lifetimes and timeouts; tests pass a clock of their own. */
  readonly schedule?: Schedule;
  /** The other nodes, in a cluster: joins for channels they hold go there. */
  readonly tunnels?: RelayTunnels;
}

interface Channel {
  /** The address, in hex. */
  readonly key: string;
  readonly creator: Peer;
  joiner: Peer | undefined;
  /** Messages relayed so far, both directions together. */
  relayed: number;
  cancelExpiry: () => void;
}

type PeerState =
  | { readonly kind: 'fresh' }
  | { readonly kind: 'waiting'; readonly channel: Channel }
  | { readonly kind: 'paired'; readonly channel: Channel }
  /** Joined a channel on another node; `tunnel` is undefined while it opens, and frames meanwhile wait in `early`. */
  | { readonly kind: 'tunnelled'; tunnel: Tunnel | undefined; readonly early: Uint8Array[] }
  | { readonly kind: 'closed' };

interface Peer {
  readonly socket: RelaySocket;
  /**
   * The client address: a rate-limit key, held while the socket is open,
   * never logged. Undefined for a socket tunnelled from another node, which
   * took the token already.
   */
  readonly client: string | undefined;
  state: PeerState;
  /** Cleared at each heartbeat, set by any pong or frame. */
  alive: boolean;
  /** Bytes sent to this socket and not yet written to the network. */
  unsent: number;
  /** Set while this socket is not read because the other party has MAX_PROVISIONING_UNSENT_BYTES unsent. */
  held: boolean;
  /** Cancels the first-frame timeout. */
  cancelTimeout: () => void;
  readonly closed: Promise<void>;
  readonly resolveClosed: () => void;
}

/**
 * The close code a tunnel passes for a socket ended without a handshake
 * (1006: never sent on the wire, so free to mean this between nodes).
 */
export const CLOSE_WITHOUT_HANDSHAKE = 1006;

const hex = (address: Uint8Array) => Buffer.from(address.buffer, address.byteOffset, address.length).toString('hex');

export class ProvisioningRelay {
  readonly #deps: RelayDeps;
  readonly #schedule: Schedule;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: wire.MAX_PROVISIONING_FRAME_BYTES, perMessageDeflate: false });
  readonly #peers = new Set<Peer>();
  readonly #channels = new Map<string, Channel>();
  #closing = false;

  constructor(deps: RelayDeps) {
    this.#deps = deps;
    this.#schedule = deps.schedule ?? timers;
  }

  /** Channels open now (created and not yet ended). */
  get openChannels(): number {
    return this.#channels.size;
  }

  /** Takes over an HTTP upgrade request for PROVISIONING_PATH. */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    try {
      const client = this.#deps.clientAddress(request);
      this.#wss.handleUpgrade(request, socket, head, (ws) => {
        try {
          this.accept(ws, client);
        } catch (error) {
          this.#fault(error);
          ws.terminate();
        }
      });
    } catch (error) {
      this.#fault(error); // an 'upgrade' listener must not throw: that would stop the process
      socket.destroy();
    }
  }

  /** Serves an open WebSocket whose client address (a rate-limit key) is `client` (undefined: admitted by another node). */
  accept(socket: RelaySocket, client: string | undefined): void {
    let resolveClosed!: () => void;
    const closed = new Promise<void>((resolve) => {
      resolveClosed = resolve;
    });
    const peer: Peer = {
      socket,
      client,
      state: { kind: 'fresh' },
      alive: true,
      unsent: 0,
      held: false,
      cancelTimeout: () => undefined,
      closed,
      resolveClosed,
    };
    this.#peers.add(peer);
    peer.cancelTimeout = this.#schedule(AUTH_TIMEOUT_MS, () => {
      this.#end(peer, CloseCode.AUTH_TIMEOUT, 'no create or join frame in time');
    });
    socket.on('message', (data, isBinary) => {
      try {
        this.#onMessage(peer, data, isBinary);
      } catch (error) {
        this.#fail(peer, error); // a bug, confined to this socket and its channel
      }
    });
    socket.on('pong', () => {
      peer.alive = true;
    });
    socket.on('close', () => {
      this.#onClose(peer);
    });
    socket.on('error', () => {
      // Protocol errors (oversized frames, bad UTF-8 in a close reason) are closed by ws itself with the right code.
      this.#deps.metrics.errors.inc({ code: 'WEBSOCKET' });
    });
  }

  /** Drops every socket silent since the last call, and pings the others (the server's heartbeat). */
  heartbeat(): void {
    for (const peer of this.#peers) {
      if (!peer.alive) {
        this.#deps.metrics.errors.inc({ code: 'HEARTBEAT_TIMEOUT' });
        peer.socket.terminate(); // its 'close' ends the channel
      } else {
        peer.alive = false;
        if (peer.socket.readyState === WebSocket.OPEN) peer.socket.ping();
      }
    }
  }

  /**
   * For shutdown: refuses new sockets, closes every open one with 1001 (both
   * parties of a channel alike), and resolves once all have closed, ending
   * without a handshake those that have not answered within `graceMs`.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const channel of [...this.#channels.values()]) this.#remove(channel);
    const peers = [...this.#peers];
    for (const peer of peers) this.#end(peer, CloseCode.GOING_AWAY, 'server shutting down');
    const cancelGrace = this.#schedule(graceMs, () => {
      for (const peer of peers) peer.socket.terminate();
    });
    await Promise.all(peers.map((peer) => peer.closed));
    cancelGrace();
    this.#wss.close();
  }

  #onMessage(peer: Peer, data: RawData, isBinary: boolean): void {
    peer.alive = true;
    const state = peer.state;
    if (state.kind === 'closed') return;
    if (!isBinary || !(data instanceof Uint8Array)) {
      this.#end(peer, CloseCode.UNSUPPORTED_DATA, 'Parley speaks binary frames only');
      return;
    }
    if (state.kind === 'tunnelled') {
      // Carried unread: the channel's node decodes and judges it.
      if (state.tunnel === undefined) state.early.push(data);
      else state.tunnel.send(data);
      return;
    }
    let frame;
    try {
      frame = decodeProvisioningClientFrame(data);
    } catch (error) {
      if (!isProtocolError(error)) throw error;
      this.#malformed(peer, error.message);
      return;
    }
    switch (state.kind) {
      case 'fresh':
        if (frame.kind === 'create') this.#create(peer);
        else if (frame.kind === 'join') this.#join(peer, frame.address, data);
        else this.#malformed(peer, 'the first frame must be create or join');
        return;
      case 'waiting':
        this.#malformed(peer, frame.kind === 'message' ? 'no message before joined' : 'one create or join per socket');
        return;
      case 'paired':
        if (frame.kind === 'message') this.#relay(peer, state.channel, frame.body);
        else this.#malformed(peer, 'one create or join per socket');
        return;
    }
  }

  /** Takes a token from the client address's bucket, or closes the socket (4429). */
  #admit(peer: Peer): boolean {
    if (peer.client === undefined) return true;
    const retryAfter = this.#deps.limiter.take(peer.client);
    if (retryAfter === 0) return true;
    this.#deps.metrics.errors.inc({ code: 'RATE_LIMITED' });
    this.#end(peer, CloseCode.RATE_LIMITED, `too many channels from this address; retry in ${retryAfter} s`);
    return false;
  }

  #create(peer: Peer): void {
    if (!this.#admit(peer)) return;
    if (this.#channels.size >= MAX_OPEN_CHANNELS) {
      this.#deps.metrics.errors.inc({ code: 'PROVISIONING_FULL' });
      this.#end(peer, CloseCode.TRY_AGAIN_LATER, 'too many channels open; try again later');
      return;
    }
    let address: Uint8Array;
    let key: string;
    do {
      address = this.#deps.randomBytes(PROVISIONING_ADDRESS_LENGTH);
      key = hex(address);
    } while (this.#channels.has(key)); // 2^-128 per open channel: for form's sake
    const channel: Channel = { key, creator: peer, joiner: undefined, relayed: 0, cancelExpiry: () => undefined };
    channel.cancelExpiry = this.#schedule(PROVISIONING_LIFETIME_MS, () => {
      this.#closeChannel(channel, CloseCode.CHANNEL_EXPIRED, 'the channel expired');
    });
    this.#channels.set(key, channel);
    this.#deps.tunnels?.offer(key, (socket) => {
      this.accept(socket, undefined);
    });
    peer.cancelTimeout();
    peer.state = { kind: 'waiting', channel };
    this.#send(peer, { kind: 'address', address });
  }

  /** `frame` is the join frame as received, for a node that holds the channel and must see it. */
  #join(peer: Peer, address: Uint8Array, frame: Uint8Array): void {
    if (!this.#admit(peer)) return;
    const channel = this.#channels.get(hex(address));
    if (channel === undefined && this.#deps.tunnels !== undefined) {
      this.#tunnel(peer, this.#deps.tunnels, hex(address), frame);
      return;
    }
    if (channel === undefined || channel.joiner !== undefined) {
      this.#end(peer, CloseCode.NO_SUCH_CHANNEL, channel === undefined ? 'no such channel' : 'the channel already has two parties');
      return;
    }
    channel.joiner = peer;
    peer.cancelTimeout();
    peer.state = { kind: 'paired', channel };
    channel.creator.state = { kind: 'paired', channel };
    this.#send(channel.creator, { kind: 'joined' });
    this.#send(peer, { kind: 'joined' });
  }

  /**
   * Joins a channel this node does not hold through the node that does:
   * closes with 4404 if none does, as for an unknown address here, and with
   * 1013 if the other nodes cannot be reached.
   */
  #tunnel(peer: Peer, tunnels: RelayTunnels, key: string, join: Uint8Array): void {
    const state: PeerState & { kind: 'tunnelled' } = { kind: 'tunnelled', tunnel: undefined, early: [] };
    peer.state = state;
    peer.cancelTimeout();
    peer.socket.pause(); // until the tunnel is open; what ws had read already waits in `early`
    const toClient = (frame: Uint8Array) => {
      if (peer.socket.readyState === WebSocket.OPEN) peer.socket.send(frame, () => undefined);
    };
    const closed = (code: number, reason: string) => {
      state.tunnel = undefined; // the far end is gone: nothing to tell it
      if (code === CLOSE_WITHOUT_HANDSHAKE) peer.socket.terminate();
      else this.#end(peer, code as CloseCode, reason);
    };
    tunnels.connect(key, join, toClient, closed).then(
      (tunnel) => {
        if (tunnel === undefined) {
          this.#end(peer, CloseCode.NO_SUCH_CHANNEL, 'no such channel');
        } else if (peer.state !== state) {
          tunnel.close(); // the socket closed while the tunnel opened
        } else {
          state.tunnel = tunnel;
          for (const frame of state.early.splice(0)) tunnel.send(frame);
          peer.socket.resume();
        }
      },
      (error: unknown) => {
        this.#deps.log.warn({ err: error }, 'a provisioning join could not reach the other nodes');
        this.#end(peer, CloseCode.TRY_AGAIN_LATER, 'try again later');
      },
    );
  }

  #relay(from: Peer, channel: Channel, body: Uint8Array): void {
    if (++channel.relayed > MAX_PROVISIONING_MESSAGES) {
      this.#deps.metrics.errors.inc({ code: 'PROVISIONING_MESSAGE_LIMIT' });
      this.#closeChannel(channel, CloseCode.LIMIT_EXCEEDED, `a channel relays at most ${MAX_PROVISIONING_MESSAGES} messages`);
      return;
    }
    const to = channel.creator === from ? channel.joiner! : channel.creator;
    this.#send(to, { kind: 'message', body }, from);
  }

  /**
   * Sends a frame to `to`. For a relayed message (`from` given), stops
   * reading `from` while `to` has more than MAX_PROVISIONING_UNSENT_BYTES
   * unwritten, and reads it again once that has drained.
   */
  #send(to: Peer, frame: ProvisioningServerFrame, from?: Peer): void {
    if (to.socket.readyState !== WebSocket.OPEN) return;
    const bytes = encodeProvisioningServerFrame(frame);
    to.unsent += bytes.length;
    to.socket.send(bytes, () => {
      to.unsent -= bytes.length;
      if (from?.held === true && to.unsent <= MAX_PROVISIONING_UNSENT_BYTES) {
        from.held = false;
        if (from.state.kind !== 'closed') from.socket.resume();
      }
    });
    if (from !== undefined && !from.held && to.unsent > MAX_PROVISIONING_UNSENT_BYTES) {
      from.held = true;
      from.socket.pause();
    }
  }

  #malformed(peer: Peer, text: string): void {
    this.#deps.metrics.errors.inc({ code: 'MALFORMED_FRAME' });
    this.#end(peer, CloseCode.MALFORMED_FRAME, text);
  }

  #fail(peer: Peer, error: unknown): void {
    this.#fault(error);
    this.#end(peer, CloseCode.INTERNAL, 'internal error');
  }

  /** A bug: logged (never with the client's address) and counted. */
  #fault(error: unknown): void {
    this.#deps.log.error({ err: error }, 'a provisioning socket failed');
    this.#deps.metrics.errors.inc({ code: 'INTERNAL' });
  }

  #channelOf(peer: Peer): Channel | undefined {
    return peer.state.kind === 'waiting' || peer.state.kind === 'paired' ? peer.state.channel : undefined;
  }

  /** Closes one socket with `code`; its channel ends, and the other party is closed with 1000. */
  #end(peer: Peer, code: CloseCode, text: string): void {
    if (peer.state.kind === 'closed') return;
    const channel = this.#channelOf(peer);
    if (peer.state.kind === 'tunnelled') peer.state.tunnel?.close();
    peer.state = { kind: 'closed' };
    peer.cancelTimeout();
    peer.held = false;
    peer.socket.close(code, closeReason(text));
    // A paused socket would never read the peer's close frame and would hang until ws's 30 s close timeout.
    peer.socket.resume();
    if (channel !== undefined) this.#leave(channel);
  }

  #onClose(peer: Peer): void {
    const channel = this.#channelOf(peer);
    if (peer.state.kind === 'tunnelled') peer.state.tunnel?.close();
    peer.state = { kind: 'closed' };
    peer.cancelTimeout();
    this.#peers.delete(peer);
    if (channel !== undefined) this.#leave(channel);
    peer.resolveClosed();
  }

  /** A party left: the channel ends, and whoever is still there is closed with 1000. */
  #leave(channel: Channel): void {
    if (!this.#remove(channel)) return;
    for (const party of [channel.creator, channel.joiner]) {
      if (party !== undefined) this.#end(party, CloseCode.NORMAL, 'the other party left');
    }
  }

  /** Ends the channel and closes both parties with `code`. */
  #closeChannel(channel: Channel, code: CloseCode, text: string): void {
    if (!this.#remove(channel)) return;
    for (const party of [channel.creator, channel.joiner]) {
      if (party !== undefined) this.#end(party, code, text);
    }
  }

  /** Forgets the channel; false if it had already ended. */
  #remove(channel: Channel): boolean {
    if (this.#channels.get(channel.key) !== channel) return false;
    this.#channels.delete(channel.key);
    this.#deps.tunnels?.withdraw(channel.key);
    channel.cancelExpiry();
    return true;
  }
}
