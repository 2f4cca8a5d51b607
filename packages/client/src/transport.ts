/**
 * One device's WebSocket to its server (docs/API.md §5), kept open: it logs
 * in, authenticates, hands envelopes to the client in order, carries sends
 * and acknowledgements, and reconnects after any drop with exponential
 * backoff and full jitter, until stopped. Connection state is reported as it
 * changes, so a UI can show it.
 *
 * It runs on any WebSocket with the browser's interface: the browser's own, or
 * the `ws` package in Node.
 */
import {
  decodeServerFrames,
  encodeClientFrame,
  type ClientFrame,
  type Destination,
  type Envelope,
  type MulticastRecipient,
  type ServerFrame,
} from '@parley/protocol';

import type { ServerApi } from './api.js';
import { fromBase64 } from './base64.js';
import { ClientError, isClientError } from './errors.js';
import { errorCode, Logger, tally } from './log.js';

/** The part of the standard WebSocket interface the transport uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

/**
 * `connecting`: opening and authenticating; `online`: authenticated (the
 * mailbox drains, then new envelopes arrive live); `offline`: waiting to
 * reconnect; `closed`: stopped for good (by the app, or because the server
 * removed this device).
 */
export type ConnectionState = 'connecting' | 'online' | 'offline' | 'closed';

export type SendAnswer = Extract<ServerFrame, { kind: 'sent' | 'refused' }>;

export interface TransportEvents {
  /** An envelope, in mailbox order; the client acknowledges it with `ack` once it is stored. */
  envelope(envelope: Envelope): void;
  /** Everything stored when the connection opened has been delivered. */
  drained(): void;
  state(state: ConnectionState, detail: string): void;
}

export interface BackoffOptions {
  /** The first retry waits up to this long (full jitter: a random time from 0). */
  readonly initialMs: number;
  /** Retries never wait longer than this. */
  readonly maxMs: number;
}

/** Quick first retries for a blip, then at most half a minute between tries, so that a server coming back is not stampeded. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000 };

/** Close codes after which reconnecting cannot help (docs/API.md §5.8). */
const FINAL_CLOSES: ReadonlyMap<number, string> = new Map([[4409, 'another connection of this device replaced this one']]);
/** An expired token or a removed device: a fresh login tells which (a removed device's login is refused). */
const UNAUTHORIZED = 4401;
const REMOVED = 'this device is no longer registered with the server';

const OPEN = 1;

export class Transport {
  readonly #api: ServerApi;
  readonly #connect: WebSocketFactory;
  readonly #events: TransportEvents;
  readonly #backoff: BackoffOptions;
  readonly #log: Logger;
  #socket: WebSocketLike | undefined;
  #state: ConnectionState = 'offline';
  #stopped = false;
  /** Started and not stopped: connected, connecting, or waiting to retry. */
  #running = false;
  #attempt = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #requestId = 0;
  readonly #pending = new Map<number, { resolve: (answer: SendAnswer) => void; reject: (error: Error) => void }>();
  #waitingForOnline: (() => void)[] = [];

  constructor(api: ServerApi, connect: WebSocketFactory, events: TransportEvents, backoff: BackoffOptions = DEFAULT_BACKOFF, log = new Logger()) {
    this.#api = api;
    this.#connect = connect;
    this.#events = events;
    this.#backoff = backoff;
    this.#log = log;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Connects, and keeps reconnecting until `stop`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopped = false;
    void this.#open();
  }

  /** Closes the connection for good; pending sends fail with `CLOSED`. */
  stop(): void {
    this.#stopped = true;
    this.#running = false;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#socket?.close(1000, 'client closing');
    this.#socket = undefined;
    this.#fail(new ClientError('CLOSED', 'the client was closed'));
    this.#setState('closed', 'closed by the app');
  }

  /**
   * Sends one message to its destinations once online, and resolves with the
   * server's answer. Rejects with `NETWORK` if the connection drops before the
   * answer: the send may or may not have been stored, and the caller sends it
   * again (receivers drop the duplicate).
   */
  send(destinations: readonly Destination[]): Promise<SendAnswer> {
    return this.#request((requestId) => ({ kind: 'send', requestId, destinations }));
  }

  /**
   * Sends one body to every device of `recipients` (a group message: the same
   * ciphertext for each) once online, and resolves with the server's answer,
   * which is that of a `send` of the body to each device: the server checks
   * the device sets the same way and stores the multicast whole or not at
   * all. Fails as `send` does.
   */
  multicast(type: number, body: Uint8Array, recipients: readonly MulticastRecipient[]): Promise<SendAnswer> {
    return this.#request((requestId) => ({ kind: 'multicast', requestId, type, body, recipients }));
  }

  /**
   * Waits until online, sends the frame `request` makes with a fresh request
   * id, and resolves with the answer to that id (rejected as `send` says).
   */
  async #request(request: (requestId: number) => ClientFrame): Promise<SendAnswer> {
    for (;;) {
      if (this.#stopped) throw new ClientError('CLOSED', 'the client was closed');
      if (this.#state === 'online' && this.#socket?.readyState === OPEN) break;
      await new Promise<void>((resolve) => this.#waitingForOnline.push(resolve));
    }
    const requestId = (this.#requestId = (this.#requestId + 1) >>> 0);
    const message = request(requestId);
    const frame = encodeClientFrame(message); // a RangeError here leaves nothing pending
    const answer = new Promise<SendAnswer>((resolve, reject) => this.#pending.set(requestId, { resolve, reject }));
    this.#send(this.#socket, frame, message.kind);
    return answer;
  }

  /** Drops the connection and connects again (after the usual backoff): the server redelivers what was not acknowledged. */
  reconnect(): void {
    this.#socket?.close(1000, 'reconnecting');
  }

  /** Acknowledges stored envelopes, so the server deletes them. Lost with the connection, in which case they come again. */
  ack(ids: readonly number[]): void {
    const socket = this.#socket;
    if (ids.length === 0 || socket?.readyState !== OPEN) return;
    for (let start = 0; start < ids.length; start += 1024) this.#send(socket, encodeClientFrame({ kind: 'ack', ids: ids.slice(start, start + 1024) }), 'ack');
  }

  /** Sends an encoded frame, logging its kind and size (never its contents: an auth frame holds the token). */
  #send(socket: WebSocketLike, frame: Uint8Array, kind: ClientFrame['kind']): void {
    this.#log.debug('frame.sent', { kind, bytes: frame.length });
    socket.send(frame);
  }

  async #open(): Promise<void> {
    this.#setState('connecting', this.#attempt === 0 ? 'connecting' : `reconnecting (attempt ${this.#attempt + 1})`);
    let token: string;
    try {
      token = await this.#api.token();
    } catch (error) {
      const removed = isClientError(error, 'SERVER') && error.status === 401;
      this.#log.warn('login.failed', { code: errorCode(error), final: removed });
      if (removed) {
        this.#stopped = true;
        this.#running = false;
        this.#fail(new ClientError('CLOSED', REMOVED));
        this.#setState('closed', `login refused: ${REMOVED}`);
      } else {
        this.#scheduleRetry(error instanceof Error ? error.message : 'login failed');
      }
      return;
    }
    if (this.#stopped) return;
    const socket = this.#connect(this.#api.webSocketUrl);
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      this.#send(socket, encodeClientFrame({ kind: 'auth', token: fromBase64(token) }), 'auth'); // base64url in HTTP, raw bytes here
    };
    socket.onmessage = (event) => {
      this.#onMessage(socket, event.data);
    };
    socket.onerror = () => undefined; // the close event follows, with the code
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#log.debug('connection.closed', { code: event.code });
      const final = FINAL_CLOSES.get(event.code);
      if (final !== undefined) {
        this.#stopped = true;
        this.#running = false;
      }
      this.#fail(new ClientError(final === undefined ? 'NETWORK' : 'CLOSED', `the connection closed (${event.code}) before the server answered`));
      if (event.code === UNAUTHORIZED) this.#api.forgetToken();
      if (final !== undefined) {
        this.#setState('closed', final);
      } else if (!this.#stopped) {
        this.#scheduleRetry(`connection closed (${event.code}${event.reason === '' ? '' : `: ${event.reason}`})`);
      }
    };
  }

  #onMessage(socket: WebSocketLike, data: unknown): void {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
    let frames: ServerFrame[];
    try {
      frames = decodeServerFrames(bytes);
    } catch {
      this.#log.warn('frames.undecodable', { bytes: bytes.length });
      socket.close(4400, 'undecodable frame');
      return;
    }
    if (this.#log.enabled) this.#log.debug('frames.received', { bytes: bytes.length, kinds: tally(frames.map((f) => f.kind)) });
    for (const frame of frames) {
      switch (frame.kind) {
        case 'ready':
          this.#attempt = 0;
          this.#setState('online', 'connected');
          for (const wake of this.#waitingForOnline.splice(0)) wake();
          break;
        case 'drained':
          this.#events.drained();
          break;
        case 'envelope':
          this.#events.envelope(frame.envelope);
          break;
        case 'sent':
        case 'refused': {
          const pending = this.#pending.get(frame.requestId);
          this.#pending.delete(frame.requestId);
          pending?.resolve(frame);
          break;
        }
      }
    }
  }

  #scheduleRetry(why: string): void {
    if (this.#stopped) return;
    const ceiling = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** this.#attempt);
    const delay = Math.random() * ceiling;
    this.#attempt++;
    this.#log.info('connection.retry', { attempt: this.#attempt, delayMs: Math.round(delay) });
    this.#setState('offline', `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.#open();
    }, delay);
  }

  #fail(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    if (this.#stopped) for (const wake of this.#waitingForOnline.splice(0)) wake(); // they find the transport stopped
  }

  #setState(state: ConnectionState, detail: string): void {
    if (this.#state === state && state !== 'offline') return;
    this.#state = state;
    this.#log.info('connection.state', { state, attempt: this.#attempt });
    this.#events.state(state, detail);
  }
}
