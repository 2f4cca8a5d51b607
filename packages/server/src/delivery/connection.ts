/**
 * One device's WebSocket, from login to close.
 *
 *   authenticating ──auth(token)──► open ──close──► closed
 *
 * The first frame must be `auth` with a valid token; then the device may send
 * and acknowledge, and receives its mailbox in order: first what is stored
 * (read from the database in windows), then, once caught up, new envelopes as
 * they are committed. At most MAX_INFLIGHT_ENVELOPES (and MAX_INFLIGHT_BYTES)
 * are pushed and unacknowledged at a time. The server stops reading the
 * socket while MAX_PENDING_SENDS sends wait for storage (a multicast is one
 * send), or while MAX_UNSENT_BYTES written to it have not gone out. A frame
 * that does not decode closes this connection and nothing else.
 */
import type { RawData, WebSocket } from 'ws';

import { decodeClientFrame, encodeServerFrame, isProtocolError, type ClientFrame, type ServerFrame } from '@parley/protocol';

import { deviceForToken } from '../auth/device.js';
import type { TokenIssuer } from '../auth/tokens.js';
import type { Directory } from '../directory.js';
import { closeReason, CloseCode } from '../errors.js';
import { faultPoint } from '../faultPoints.js';
import { AUTH_TIMEOUT_MS, MAX_EARLY_FRAMES, MAX_INFLIGHT_BYTES, MAX_INFLIGHT_ENVELOPES, MAX_PENDING_SENDS, MAX_UNSENT_BYTES } from '../limits.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { StoredEnvelope } from '../storage/mailbox.js';
import { multicastDestinations, type MailboxListener, type PostOffice, type Sender, type SendOutcome } from './postOffice.js';

export interface ConnectionDeps {
  readonly postOffice: PostOffice;
  readonly tokens: TokenIssuer;
  readonly directory: Directory;
  readonly metrics: Metrics;
  readonly log: Logger;
}

export class DeviceConnection implements MailboxListener {
  readonly #socket: WebSocket;
  readonly #deps: ConnectionDeps;
  #state: 'authenticating' | 'verifying' | 'open' | 'closed' = 'authenticating';
  #device: Sender | undefined;
  readonly #authTimer: NodeJS.Timeout;
  /** Frames written this turn, sent together as one message at its end: see #write. */
  #outbox: Uint8Array[] = [];
  /** Bytes handed to the socket and not yet taken by the network (MAX_UNSENT_BYTES). */
  #unsent = 0;

  /**
   * Set while a send waits for accounts to be read (see PostOffice.accept):
   * later sends wait behind it, so that sends are stored in the order sent.
   */
  #lookups: Promise<void> | undefined;
  #pendingSends = 0;
  /** Frames that arrived while the token was being checked. */
  readonly #early: ClientFrame[] = [];
  #paused = false;

  /** Pushed, not yet acknowledged: id → body bytes. */
  readonly #inflight = new Map<number, number>();
  #inflightBytes = 0;
  /** The highest envelope id pushed on this connection. */
  #cursor = 0;
  /** `live`: caught up, committed envelopes are pushed as they come; `behind`: the mailbox must be read. */
  #mode: 'live' | 'behind' = 'behind';
  #reading = false;
  /** Set when something was committed to the mailbox while a read was running. */
  #dirty = false;
  #drainedSent = false;
  /** Cleared at each heartbeat, set by any pong or frame. */
  alive = true;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  readonly #resolveClosed: () => void;

  constructor(socket: WebSocket, deps: ConnectionDeps) {
    this.#socket = socket;
    this.#deps = deps;
    let resolveClosed!: () => void;
    this.closed = new Promise((resolve) => {
      resolveClosed = resolve;
    });
    this.#resolveClosed = resolveClosed;
    this.#authTimer = setTimeout(() => {
      this.end(CloseCode.AUTH_TIMEOUT, 'no auth frame in time');
    }, AUTH_TIMEOUT_MS);
    socket.on('message', (data, isBinary) => {
      try {
        this.#onMessage(data, isBinary);
      } catch (error) {
        this.#fail(error); // a bug, confined to this connection
      }
    });
    socket.on('pong', () => {
      this.alive = true;
    });
    socket.on('close', () => {
      this.#onClose();
    });
    socket.on('error', () => {
      // Protocol errors (oversized frames, bad UTF-8 in a close reason) are closed by ws itself with the right code.
      deps.metrics.errors.inc({ code: 'WEBSOCKET' });
    });
  }

  /** Envelopes pushed and not yet acknowledged. */
  get inflight(): number {
    return this.#inflight.size;
  }

  /** Bytes written to the socket and not yet taken by the network. */
  get unsent(): number {
    return this.#unsent;
  }

  /**
   * Stops reading frames and resolves once every send already read has been
   * checked and queued (for shutdown: what was read is still stored and answered).
   */
  async quiesce(): Promise<void> {
    this.#paused = true;
    this.#socket.pause();
    while (this.#lookups !== undefined) await this.#lookups;
  }

  end(code: number, text: string): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#authTimer);
    this.#flushOutbox(); // what was written before the close still goes out, ahead of it
    this.#socket.close(code, closeReason(text));
    // A paused socket would never read the peer's close frame and would hang until ws's 30 s close timeout;
    // frames read from now on are dropped by #onMessage.
    this.#socket.resume();
  }

  /** Sends a heartbeat ping; `alive` must be set again by the pong before the next one. */
  ping(): void {
    this.alive = false;
    if (this.#socket.readyState === this.#socket.OPEN) this.#socket.ping();
  }


  /** Closes without a handshake: for a peer that stopped answering. */
  terminate(): void {
    this.#state = 'closed';
    this.#socket.terminate();
  }

  offer(envelope: StoredEnvelope): void {
    if (this.#state !== 'open') return;
    if (this.#reading) {
      this.#dirty = true;
    } else if (this.#mode === 'live' && this.#hasRoom()) {
      this.#push(envelope);
    } else {
      this.#mode = 'behind';
      if (this.#hasRoom()) void this.#pump();
    }
  }

  catchUp(): void {
    if (this.#state !== 'open') return;
    this.#mode = 'behind';
    if (this.#hasRoom()) void this.#pump(); // a read already running just marks itself dirty and reads again
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true;
    if (this.#state === 'closed') return;
    if (!isBinary || !(data instanceof Uint8Array)) {
      this.end(CloseCode.UNSUPPORTED_DATA, 'Parley speaks binary frames only');
      return;
    }
    let frame: ClientFrame;
    try {
      frame = decodeClientFrame(data);
    } catch (error) {
      if (!isProtocolError(error)) throw error;
      this.#deps.metrics.errors.inc({ code: 'MALFORMED_FRAME' });
      this.end(CloseCode.MALFORMED_FRAME, error.message);
      return;
    }
    const misplaced =
      frame.kind === 'auth' ? this.#state !== 'authenticating' && 'already authenticated' : this.#state === 'authenticating' && 'the first frame must be auth';
    if (misplaced !== false) {
      this.#deps.metrics.errors.inc({ code: 'MALFORMED_FRAME' });
      this.end(CloseCode.MALFORMED_FRAME, misplaced);
      return;
    }
    if (this.#state === 'verifying') {
      // Sent right behind the token, before `ready`: handled, in order, once the token checks out.
      if (this.#early.length === MAX_EARLY_FRAMES) {
        this.end(CloseCode.MALFORMED_FRAME, `at most ${MAX_EARLY_FRAMES} frames before ready`);
        return;
      }
      this.#early.push(frame);
      return;
    }
    this.#handle(frame);
  }

  #handle(frame: ClientFrame): void {
    switch (frame.kind) {
      case 'auth':
        void this.#authenticate(frame.token).catch((error: unknown) => {
          this.#fail(error);
        });
        return;
      case 'send':
        faultPoint('after-receive');
        this.#send(frame.requestId, frame.destinations);
        return;
      case 'ack':
        faultPoint('before-ack');
        this.#acknowledge(frame.ids);
        return;
      case 'multicast':
        faultPoint('after-receive');
        // The send it stands for, answered under the same request id; one pending send, however many devices it names.
        this.#send(frame.requestId, multicastDestinations(frame.type, frame.body, frame.recipients));
        return;
    }
  }

  async #authenticate(token: Uint8Array): Promise<void> {
    this.#socket.pause(); // at most a few frames arrive until the token is checked (MAX_EARLY_FRAMES)
    this.#state = 'verifying';
    const device = await deviceForToken(this.#deps.tokens, this.#deps.directory, token);
    if (device === undefined) {
      this.end(CloseCode.UNAUTHORIZED, 'invalid or expired token');
      return;
    }
    if (this.#closed()) return; // closed while the token was checked
    clearTimeout(this.#authTimer);
    this.#device = { accountId: device.accountId, deviceId: device.deviceId, username: device.account.username };
    this.#state = 'open';
    if (!this.#paused) this.#socket.resume();
    this.#deps.postOffice.listen(this.#device, this)?.end(CloseCode.REPLACED, 'replaced by a newer connection');
    this.#deps.metrics.connections.inc();
    this.#write({ kind: 'ready' });
    for (const frame of this.#early.splice(0)) this.#handle(frame);
    void this.#pump();
  }

  #send(requestId: number, destinations: Extract<ClientFrame, { kind: 'send' }>['destinations']): void {
    const device = this.#device!;
    if (++this.#pendingSends >= MAX_PENDING_SENDS && !this.#paused) this.#socket.pause();
    const answer = (outcome: SendOutcome) => {
      this.#write(
        outcome.ok
          ? { kind: 'sent', requestId, timestamp: outcome.timestamp }
          : { kind: 'refused', requestId, code: outcome.code, message: outcome.message, mismatches: outcome.mismatches },
      );
      this.#pendingSends--;
      this.#readIfRoom();
    };
    const accept = () =>
      this.#deps.postOffice.accept(device, destinations, answer)?.catch((error: unknown) => {
        this.#deps.log.error({ err: error }, 'checking a send failed');
        answer({ ok: false, code: 'UNAVAILABLE', message: 'the server could not check the send; try again', mismatches: [] });
      });
    const pending = this.#lookups === undefined ? accept() : this.#lookups.then(accept);
    if (pending !== undefined) {
      const tail: Promise<void> = (this.#lookups = pending.then(() => {
        if (this.#lookups === tail) this.#lookups = undefined;
      }));
    }
  }

  #acknowledge(ids: readonly number[]): void {
    const acknowledged: number[] = [];
    for (const id of ids) {
      const bytes = this.#inflight.get(id);
      if (bytes === undefined) continue; // not pushed on this connection: nothing of anyone else's can be touched
      this.#inflight.delete(id);
      this.#inflightBytes -= bytes;
      acknowledged.push(id);
    }
    if (acknowledged.length > 0) this.#deps.postOffice.acknowledge(this.#device!, acknowledged);
    if (this.#mode === 'behind' && this.#hasRoom()) void this.#pump();
  }

  /**
   * Reads the socket again once fewer than half of MAX_PENDING_SENDS sends
   * wait and at most half of MAX_UNSENT_BYTES have not gone out, unless
   * shutdown stopped it or the token is being checked.
   */
  #readIfRoom(): void {
    if (this.#paused || this.#state !== 'open' || !this.#socket.isPaused) return;
    if (this.#pendingSends < MAX_PENDING_SENDS / 2 && this.#unsent <= MAX_UNSENT_BYTES / 2) this.#socket.resume();
  }

  /** Whether the connection was closed (callers check after every await). */
  #closed(): boolean {
    return this.#state === 'closed';
  }

  /** Whether an envelope was committed to the mailbox during the last read. */
  #committedMeanwhile(): boolean {
    return this.#dirty;
  }

  #hasRoom(): boolean {
    return this.#inflight.size < MAX_INFLIGHT_ENVELOPES && this.#inflightBytes < MAX_INFLIGHT_BYTES;
  }

  /** Reads the mailbox after the cursor and pushes until the window is full or the mailbox is drained. */
  async #pump(): Promise<void> {
    if (this.#reading) {
      this.#dirty = true;
      return;
    }
    this.#reading = true;
    this.#mode = 'behind';
    try {
      while (!this.#closed() && this.#hasRoom()) {
        this.#dirty = false;
        const room = MAX_INFLIGHT_ENVELOPES - this.#inflight.size;
        const envelopes = await this.#deps.postOffice.read(this.#device!, this.#cursor, room);
        for (const envelope of envelopes) {
          if (this.#closed() || !this.#hasRoom()) return; // the window filled (by bytes): acks resume the reading
          this.#push(envelope);
        }
        if (envelopes.length < room && !this.#committedMeanwhile()) {
          this.#mode = 'live';
          if (!this.#drainedSent) {
            this.#drainedSent = true;
            this.#write({ kind: 'drained' });
          }
          return;
        }
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Pushes `envelope`, unless it is at or below the cursor: pushed already, by
   * a mailbox read that ended after its commit and before its live offer came
   * (commits run one at a time, so ids only grow along a mailbox).
   */
  #push(envelope: StoredEnvelope): void {
    if (envelope.id <= this.#cursor) return;
    this.#inflight.set(envelope.id, envelope.body.length);
    this.#inflightBytes += envelope.body.length;
    this.#cursor = envelope.id;
    this.#deps.metrics.delivered.inc();
    this.#write({
      kind: 'envelope',
      envelope: {
        id: envelope.id,
        timestamp: envelope.timestamp,
        source: envelope.source,
        sourceDevice: envelope.sourceDevice,
        type: envelope.type,
        body: envelope.body,
      },
    });
    faultPoint('after-push', this.#flushOutbox);
  }

  /**
   * Writes a frame. The frames written in one turn (the `sent` answers and
   * envelopes of one commit, say) leave together, at the end of the turn's
   * microtasks, as one WebSocket message: one send and one system call
   * instead of one per frame. Order is kept.
   */
  #write(frame: ServerFrame): void {
    if (this.#outbox.length === 0) process.nextTick(this.#flushOutbox);
    this.#outbox.push(encodeServerFrame(frame));
  }

  readonly #flushOutbox = (): void => {
    const frames = this.#outbox;
    this.#outbox = [];
    if (frames.length === 0 || this.#socket.readyState !== this.#socket.OPEN) return;
    const message = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    this.#unsent += message.length;
    this.#socket.send(message, () => {
      this.#unsent -= message.length;
      this.#readIfRoom();
    });
    if (this.#unsent > MAX_UNSENT_BYTES && this.#state === 'open') this.#socket.pause();
  };

  #fail(error: unknown): void {
    this.#deps.log.error({ err: error }, 'a connection failed');
    this.#deps.metrics.errors.inc({ code: 'INTERNAL' });
    this.end(CloseCode.INTERNAL, 'internal error');
  }

  #onClose(): void {
    clearTimeout(this.#authTimer);
    this.#resolveClosed();
    if (this.#device !== undefined) {
      this.#deps.postOffice.unlisten(this.#device, this);
      this.#deps.metrics.connections.dec();
    }
    this.#state = 'closed';
  }
}
