/**
 * Provisioning-relay tunnels between nodes, over Redis pub/sub: the two
 * devices of a link may reach different nodes, and a channel lives on the
 * node that created it (provisioning/relay.ts).
 *
 *   parley:<ns>:prov:<address>   heard by the node holding the channel
 *     open  <tunnel> <join frame>     a joiner came to another node for it
 *     frame <tunnel> <client frame>   carried unread
 *     close <tunnel>                  the joiner's socket closed
 *   parley:<ns>:tunnel:<tunnel>  heard by the joiner's node
 *     frame <server frame>
 *     close <code> <reason>           the channel's node closed the joiner
 *
 * Each packet is one byte of kind, then (toward the channel) the 16-byte
 * tunnel id, then the payload. On the channel's node a tunnel is a socket
 * like any other (`TunnelSocket`), so the relay runs the channel, its limits
 * and its state machine, exactly as for two local sockets. Liveness is each
 * end's own: the joiner's node pings the real socket, and a tunnel socket
 * answers pings at once.
 *
 * Nothing of a tunnel is kept when Redis goes away: its links fail, and the
 * devices start linking again. A joiner's node that dies leaves the channel
 * open on the other node until its lifetime ends (PROVISIONING_LIFETIME_MS).
 */
import { WebSocket, type RawData } from 'ws';

import { CLOSE_WITHOUT_HANDSHAKE, type RelaySocket, type RelayTunnels, type Tunnel } from '../provisioning/relay.js';

const OPEN = 1;
const FRAME = 2;
const CLOSE = 3;
const TUNNEL_ID_BYTES = 16;

/** What the tunnels use of the cluster (RedisCluster). */
export interface TunnelTransport {
  channel(name: string): string;
  listen(channel: string, handler: (message: Buffer) => void): Promise<void>;
  unlisten(channel: string): void;
  publishBytes(channel: string, message: Uint8Array): Promise<number>;
}

function packet(kind: number, ...parts: Uint8Array[]): Buffer {
  return Buffer.concat([Uint8Array.of(kind), ...parts]);
}

function closePayload(code: number, reason: string): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(code);
  return Buffer.concat([bytes, Buffer.from(reason)]);
}

export class RedisTunnels implements RelayTunnels {
  readonly #transport: TunnelTransport;
  readonly #randomBytes: (length: number) => Uint8Array;
  /** Tunnel sockets on this node (the channel's end), by tunnel id in hex. */
  readonly #sockets = new Map<string, TunnelSocket>();

  constructor(transport: TunnelTransport, randomBytes: (length: number) => Uint8Array) {
    this.#transport = transport;
    this.#randomBytes = randomBytes;
  }

  offer(key: string, accept: (socket: RelaySocket) => void): void {
    const channel = this.#transport.channel(`prov:${key}`);
    this.#transport
      .listen(channel, (message) => {
        this.#fromJoiner(message, accept);
      })
      .catch(() => undefined); // Redis away: this channel takes joiners on this node only
  }

  withdraw(key: string): void {
    this.#transport.unlisten(this.#transport.channel(`prov:${key}`));
  }

  async connect(
    key: string,
    join: Uint8Array,
    toClient: (frame: Uint8Array) => void,
    closed: (code: number, reason: string) => void,
  ): Promise<Tunnel | undefined> {
    const id = this.#randomBytes(TUNNEL_ID_BYTES);
    const back = this.#transport.channel(`tunnel:${Buffer.from(id).toString('hex')}`);
    const there = this.#transport.channel(`prov:${key}`);
    let open = true;
    const end = () => {
      open = false;
      this.#transport.unlisten(back);
    };
    let receivers: number;
    try {
      await this.#transport.listen(back, (message) => {
        if (message[0] === FRAME) {
          toClient(message.subarray(1));
        } else if (message[0] === CLOSE && open) {
          end();
          closed(message.readUInt16BE(1), message.subarray(3).toString());
        }
      });
      receivers = await this.#transport.publishBytes(there, packet(OPEN, id, join));
    } catch (error) {
      end();
      throw error;
    }
    if (receivers === 0) {
      end(); // no node holds the channel
      return undefined;
    }
    const send = (kind: number, frame: Uint8Array) => {
      this.#transport.publishBytes(there, packet(kind, id, frame)).catch(() => {
        if (open) closed(CLOSE_WITHOUT_HANDSHAKE, '');
      });
    };
    return {
      send: (frame) => {
        if (open) send(FRAME, frame);
      },
      close: () => {
        if (!open) return;
        end();
        send(CLOSE, new Uint8Array(0));
      },
    };
  }

  /** A packet on a channel this node holds: a joiner opening a tunnel, a frame through one, or its close. */
  #fromJoiner(message: Buffer, accept: (socket: RelaySocket) => void): void {
    const kind = message[0];
    const id = message.subarray(1, 1 + TUNNEL_ID_BYTES);
    const payload = message.subarray(1 + TUNNEL_ID_BYTES);
    const idHex = id.toString('hex');
    if (kind === OPEN) {
      const back = this.#transport.channel(`tunnel:${idHex}`);
      const socket = new TunnelSocket((reply) => this.#transport.publishBytes(back, reply), () => this.#sockets.delete(idHex));
      this.#sockets.set(idHex, socket);
      accept(socket);
      socket.receive(payload);
    } else if (kind === FRAME) {
      this.#sockets.get(idHex)?.receive(payload);
    } else if (kind === CLOSE) {
      this.#sockets.get(idHex)?.gone();
    }
  }
}

type Listeners = {
  message: ((data: RawData, isBinary: boolean) => void)[];
  pong: (() => void)[];
  close: (() => void)[];
};

/** The channel's end of a tunnel: to the relay, a socket; its frames go to, and come from, the joiner's node. */
class TunnelSocket implements RelaySocket {
  readyState: number = WebSocket.OPEN;
  readonly #reply: (packet: Buffer) => Promise<unknown>;
  readonly #forget: () => void;
  readonly #listeners: Listeners = { message: [], pong: [], close: [] };

  constructor(reply: (packet: Buffer) => Promise<unknown>, forget: () => void) {
    this.#reply = reply;
    this.#forget = forget;
  }

  send(data: Uint8Array, callback: (error?: Error) => void): void {
    this.#reply(packet(FRAME, data)).then(
      () => {
        callback();
      },
      (error: unknown) => {
        callback(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  close(code: number, reason: string): void {
    if (this.readyState !== WebSocket.OPEN) return;
    this.#reply(packet(CLOSE, closePayload(code, reason))).catch(() => undefined);
    this.gone();
  }

  terminate(): void {
    this.close(CLOSE_WITHOUT_HANDSHAKE, '');
  }

  /** The joiner's node checks the real socket; this end is alive while the tunnel is. */
  ping(): void {
    for (const listener of this.#listeners.pong) listener();
  }

  /** Redis carries no backpressure: a channel's messages are bounded (MAX_PROVISIONING_MESSAGES) instead. */
  pause(): void {}

  resume(): void {}

  on(event: 'message', listener: (data: RawData, isBinary: boolean) => void): this;
  on(event: 'pong' | 'close', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: string, listener: (...args: never[]) => void): this {
    if (event === 'message') this.#listeners.message.push(listener as Listeners['message'][number]);
    else if (event === 'pong' || event === 'close') this.#listeners[event].push(listener);
    return this; // no errors: a failed publish reaches `send`'s callback
  }

  /** A frame from the joiner. */
  receive(frame: Buffer): void {
    if (this.readyState !== WebSocket.OPEN) return;
    for (const listener of this.#listeners.message) listener(frame, true);
  }

  /** The tunnel ended (either end closed it). */
  gone(): void {
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSED;
    this.#forget();
    for (const listener of this.#listeners.close) listener();
  }
}
