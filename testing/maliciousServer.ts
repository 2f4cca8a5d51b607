/**
 * A hostile server for tests: a man-in-the-middle proxy in front of a real
 * `parley-server` process. Clients connect to the proxy's URL as to a server;
 * it speaks the real API (every route and the device WebSocket pass through to
 * the real server) but lets a test misbehave on purpose: rewrite JSON answers
 * (device lists, bundles), and drop, duplicate, reorder, rewrite or forge
 * WebSocket frames in either direction. What it cannot do is what a real
 * hostile server cannot do either: sign with anyone's identity key but its own.
 *
 * The proxy learns which device each WebSocket and HTTP request belongs to by
 * watching the login it relays: `POST /v1/auth/token` names the device and
 * answers its token, which the socket's `auth` frame and the request's bearer
 * header carry.
 *
 * Hooks run in order per connection and direction (an async hook holds the
 * frames behind it). A hook that throws closes its connection with 1011 and
 * logs why. The provisioning relay (`/v1/provisioning`) and any other
 * WebSocket path are tunnelled unchanged. Ready-made misbehaviours are in
 * misbehaviours.ts.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import {
  decodeClientFrame,
  decodeServerFrames,
  encodeClientFrame,
  encodeServerFrame,
  type ClientFrame,
  type Envelope,
  type ServerFrame,
} from '@parley/protocol';
import WebSocket, { WebSocketServer, type RawData } from 'ws';

import { tunnel } from './tunnel.js';

/** One device of one account. */
export interface DeviceName {
  readonly username: string;
  readonly deviceId: number;
}

/** A JSON answer on its way back to a client. */
export interface HttpExchange {
  readonly method: string;
  /** The request path without its query, e.g. `/v1/accounts/bob` or `/v1/keys/bob/*`. */
  readonly path: string;
  readonly status: number;
  /** The client's JSON request body, parsed (undefined when there was none). */
  readonly request: unknown;
  /** The server's JSON answer, parsed. */
  readonly body: unknown;
  /** The device whose bearer token the request carried (undefined without one, or for a token the proxy never saw issued). */
  readonly requester: DeviceName | undefined;
}

/**
 * Sees every JSON answer; returns a replacement body, or undefined (or a
 * promise of either) to pass it on. The status stays the server's.
 */
export type HttpHook = (exchange: HttpExchange) => unknown;

/**
 * What a frame hook does with one frame: return nothing to pass it on
 * unchanged, or the frames to send in its place (`[]` drops it, `[f, f]`
 * duplicates it, `[g]` replaces it). Frames can also be sent later, bypassing
 * the hooks, with `connection.toClient` / `toServer` (a delay, a reorder).
 */
export type Verdict<F> = readonly F[] | undefined;
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- a hook that only watches (`(f) => { seen.push(f); }`) returns nothing
export type FrameHook<F> = (frame: F, connection: Connection) => Verdict<F> | Promise<Verdict<F>> | void;
/** Server→client frames, one at a time even when the server packed several in one WebSocket message. */
export type ServerFrameHook = FrameHook<ServerFrame>;
/** Client→server frames. */
export type ClientFrameHook = FrameHook<ClientFrame>;

/** One device WebSocket through the proxy. */
export interface Connection {
  /** Numbered from 1 in the order connections opened. */
  readonly id: number;
  /** The device it authenticated as, once its `auth` frame has passed (undefined for a token the proxy never saw issued). */
  readonly device: DeviceName | undefined;
  /** Every envelope pushed to the client on this connection, after the hooks, in order. */
  readonly delivered: readonly Envelope[];
  /** Every envelope id the client acknowledged on this connection, in order (before the hooks). */
  readonly acked: readonly number[];
  /** Sends frames to the client as if from the server, in one WebSocket message, bypassing the hooks. */
  toClient(...frames: ServerFrame[]): void;
  /** Sends frames to the server as if from the client, one message each, bypassing the hooks. */
  toServer(...frames: ClientFrame[]): void;
  /** Closes both sides: the client sees `code` (default 1012, "service restart"), and reconnects. */
  close(code?: number, reason?: string): void;
}

export interface MaliciousServer {
  /** http://127.0.0.1:PORT: clients connect here instead of the real server. */
  readonly url: string;
  /** Rewrites JSON answers (undefined: pass everything). Replaces the previous hook. */
  onHttpResponse(hook: HttpHook | undefined): void;
  /** Intercepts server→client frames on every connection (undefined: pass everything). Replaces the previous hook. */
  onServerFrame(hook: ServerFrameHook | undefined): void;
  /** Intercepts client→server frames on every connection (undefined: pass everything). Replaces the previous hook. */
  onClientFrame(hook: ClientFrameHook | undefined): void;
  /** The open device connections, oldest first. */
  connections(): readonly Connection[];
  /** Pushes forged frames to every open connection of `to` (an account, or one device); returns how many connections got them. */
  inject(to: string | DeviceName, ...frames: ServerFrame[]): number;
  close(): Promise<void>;
}

const WEBSOCKET_PATH = '/v1/websocket';
/** Forged and replayed envelope ids start here: far above any id a test server hands out, below 2^53. */
const FORGED_ID_BASE = 2 ** 45;
let forgedIds = FORGED_ID_BASE;

/** A fresh envelope id no real envelope has. */
export function forgedEnvelopeId(): number {
  return ++forgedIds;
}

/** An envelope frame the server never stored: a fresh id and the current time unless given. */
export function forgedEnvelope(fields: Omit<Envelope, 'id' | 'timestamp'> & Partial<Pick<Envelope, 'id' | 'timestamp'>>): ServerFrame {
  return { kind: 'envelope', envelope: { id: forgedEnvelopeId(), timestamp: Date.now(), ...fields } };
}

const toBytes = (data: RawData): Uint8Array =>
  Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
const concat = (parts: readonly Uint8Array[]): Uint8Array => Buffer.concat(parts);

/** Close codes a WebSocket may send; the others (1005, 1006, 1015) describe a close without one. */
const sendable = (code: number) => (code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999);
function closeLike(socket: WebSocket, code: number, reason: Buffer | string): void {
  if (socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) return;
  if (sendable(code)) socket.close(code, reason);
  else socket.terminate();
}

function parseJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

const readAll = (stream: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => { resolve(Buffer.concat(chunks)); });
    stream.on('error', reject);
  });

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

class ProxiedConnection implements Connection {
  readonly id: number;
  device: DeviceName | undefined;
  readonly delivered: Envelope[] = [];
  readonly acked: number[] = [];
  readonly #client: Promise<WebSocket>;
  readonly #upstream: WebSocket;
  #resolveClient!: (client: WebSocket) => void;
  #down: Promise<unknown>;
  #up: Promise<unknown> = Promise.resolve();

  constructor(id: number, upstream: WebSocket) {
    this.id = id;
    this.#upstream = upstream;
    this.#client = new Promise((resolve) => (this.#resolveClient = resolve));
    this.#down = this.#client;
  }

  attach(client: WebSocket): void {
    this.#resolveClient(client);
  }

  /** Queues work in one direction, in order; a throwing hook closes the connection. */
  queue(direction: 'down' | 'up', work: () => Promise<void> | void): void {
    const run = async () => {
      try {
        await work();
      } catch (error) {
        console.error(`maliciousServer: connection ${this.id}: a hook threw; closing it`, error);
        this.close(1011, 'a test hook threw');
      }
    };
    if (direction === 'down') this.#down = this.#down.then(run);
    else this.#up = this.#up.then(run);
  }

  toClient(...frames: ServerFrame[]): void {
    if (frames.length === 0) return;
    for (const frame of frames) if (frame.kind === 'envelope') this.delivered.push(frame.envelope);
    const bytes = concat(frames.map(encodeServerFrame));
    void this.#client.then((client) => {
      if (client.readyState === WebSocket.OPEN) client.send(bytes, { binary: true });
    });
  }

  toServer(...frames: ClientFrame[]): void {
    for (const frame of frames) if (this.#upstream.readyState === WebSocket.OPEN) this.#upstream.send(encodeClientFrame(frame), { binary: true });
  }

  /** Sends the client's raw message on unchanged. */
  rawToServer(data: Uint8Array, binary: boolean): void {
    if (this.#upstream.readyState === WebSocket.OPEN) this.#upstream.send(data, { binary });
  }

  rawToClient(data: Uint8Array, binary: boolean): void {
    void this.#client.then((client) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary });
    });
  }

  close(code = 1012, reason = 'closed by the test'): void {
    void this.#client.then((client) => { closeLike(client, code, reason); });
    closeLike(this.#upstream, 1000, 'client gone');
  }
}

/**
 * Starts a proxy on a free port of 127.0.0.1 in front of the server at
 * `upstream` (its http:// URL, as `spawnServer` gives). It passes everything
 * until a hook is set.
 */
export async function startMaliciousServer(upstream: string): Promise<MaliciousServer> {
  const target = new URL(upstream);
  const wsBase = upstream.replace(/^http/, 'ws').replace(/\/+$/, '');
  let httpHook: HttpHook | undefined;
  let serverHook: ServerFrameHook | undefined;
  let clientHook: ClientFrameHook | undefined;
  /** Tokens the proxy saw issued (base64url, as HTTP carries them), and to whom. */
  const tokens = new Map<string, DeviceName>();
  const live = new Set<ProxiedConnection>();
  let nextId = 1;

  async function answerHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestBody = await readAll(req);
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      const forward = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        resolve,
      );
      forward.on('error', reject);
      forward.end(requestBody);
    });
    let body = await readAll(answer);
    const status = answer.statusCode ?? 502;
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (String(answer.headers['content-type']).includes('application/json')) {
      const parsed = parseJson(body);
      const request = parseJson(requestBody);
      if (method === 'POST' && path === '/v1/auth/token' && status === 200) learnToken(request, parsed);
      const requester = tokens.get(/^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
      const replacement: unknown = await httpHook?.({ method, path, status, request, body: parsed, requester });
      if (replacement !== undefined) body = Buffer.from(JSON.stringify(replacement));
    }
    const headers: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
    res.writeHead(status, { ...headers, 'content-length': String(body.length) });
    res.end(body);
  }

  function learnToken(request: unknown, answer: unknown): void {
    const r = request as { username?: unknown; deviceId?: unknown } | undefined;
    const a = answer as { token?: unknown } | undefined;
    if (typeof r?.username === 'string' && typeof r.deviceId === 'number' && typeof a?.token === 'string') {
      tokens.set(a.token, { username: r.username, deviceId: r.deviceId });
    }
  }

  const server: Server = createServer((req, res) => {
    answerHttp(req, res).catch(() => res.destroy());
  });

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

  function fromClient(conn: ProxiedConnection, data: Uint8Array, binary: boolean): Promise<void> | void {
    let frame: ClientFrame;
    try {
      if (!binary) throw new Error('text');
      frame = decodeClientFrame(data);
    } catch {
      conn.rawToServer(data, binary); // the real server refuses it as it would
      return;
    }
    if (frame.kind === 'auth') conn.device = tokens.get(Buffer.from(frame.token).toString('base64url'));
    if (frame.kind === 'ack') conn.acked.push(...frame.ids);
    const hook = clientHook;
    if (hook === undefined) {
      conn.rawToServer(data, binary);
      return;
    }
    return (async () => {
      const verdict = await hook(frame, conn);
      if (verdict === undefined) conn.rawToServer(data, binary);
      else conn.toServer(...verdict);
    })();
  }

  function fromServer(conn: ProxiedConnection, data: Uint8Array, binary: boolean): Promise<void> | void {
    let frames: ServerFrame[];
    try {
      if (!binary) throw new Error('text');
      frames = decodeServerFrames(data);
    } catch {
      conn.rawToClient(data, binary); // the client refuses it as it would
      return;
    }
    const hook = serverHook;
    if (hook === undefined) {
      for (const frame of frames) if (frame.kind === 'envelope') conn.delivered.push(frame.envelope);
      conn.rawToClient(data, binary);
      return;
    }
    return (async () => {
      const out: ServerFrame[] = [];
      for (const frame of frames) out.push(...((await hook(frame, conn)) ?? [frame]));
      conn.toClient(...out); // what one server message held stays one message
    })();
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? '/').split('?')[0] !== WEBSOCKET_PATH) {
      tunnel(target, req, socket, head);
      return;
    }
    // Accept the client only once the real server has: a refused upgrade (404, 503) reaches the client as it was.
    const upstreamSocket = new WebSocket(`${wsBase}${req.url ?? WEBSOCKET_PATH}`, { perMessageDeflate: false });
    const conn = new ProxiedConnection(nextId++, upstreamSocket);
    upstreamSocket.on('message', (data, binary) => {
      conn.queue('down', () => fromServer(conn, toBytes(data), binary));
    });
    upstreamSocket.on('error', () => {
      socket.destroy();
      conn.close(1011, 'upstream error');
    });
    upstreamSocket.on('unexpected-response', (request, response) => {
      socket.end(`HTTP/1.1 ${response.statusCode ?? 502} ${response.statusMessage ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      request.destroy();
    });
    upstreamSocket.once('open', () => {
      wss.handleUpgrade(req, socket, head, (client) => {
        live.add(conn);
        conn.attach(client);
        client.on('message', (data, binary) => {
          conn.queue('up', () => fromClient(conn, toBytes(data), binary));
        });
        client.on('close', (code, reason) => {
          live.delete(conn);
          closeLike(upstreamSocket, code, reason);
        });
        client.on('error', () => { upstreamSocket.terminate(); });
        upstreamSocket.on('close', (code, reason) => {
          live.delete(conn);
          // After what the server said last has gone through the hooks.
          conn.queue('down', () => { closeLike(client, code, reason); });
        });
      });
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  return {
    url: `http://127.0.0.1:${port}`,
    onHttpResponse: (hook) => { httpHook = hook; },
    onServerFrame: (hook) => { serverHook = hook; },
    onClientFrame: (hook) => { clientHook = hook; },
    connections: () => [...live],
    inject(to, ...frames) {
      const matches = [...live].filter((c) =>
        c.device !== undefined && (typeof to === 'string' ? c.device.username === to : c.device.username === to.username && c.device.deviceId === to.deviceId));
      for (const c of matches) c.toClient(...frames);
      return matches.length;
    },
    close: async () => {
      for (const c of live) c.close(1001, 'proxy closing');
      live.clear();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
}
