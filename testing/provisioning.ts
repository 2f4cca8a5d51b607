/**
 * A raw provisioning-relay WebSocket for tests: sends client frames (or any
 * bytes at all), queues the server's frames decoded, and tells how it closed.
 * No end-to-end crypto: the relay passes bodies unread, so tests send whatever
 * bytes they like.
 */
import {
  decodeProvisioningServerFrame,
  encodeProvisioningClientFrame,
  type ProvisioningClientFrame,
  type ProvisioningServerFrame,
} from '@parley/protocol';
import WebSocket from 'ws';

import { wakeOrTimeout } from './device.js';

export class RelayParty {
  readonly socket: WebSocket;
  readonly #frames: ProvisioningServerFrame[] = [];
  readonly #waiters = new Set<() => void>();
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      this.#frames.push(decodeProvisioningServerFrame(new Uint8Array(data)));
      this.#wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.#wake();
      });
    });
    socket.on('error', () => undefined);
  }

  /**
   * Opens a socket on `${baseUrl}/v1/provisioning`. `forwardedFor` is sent as
   * X-Forwarded-For: with `--trust-proxy 127.0.0.1`, the client address the
   * server rate-limits.
   */
  static open(baseUrl: string, options: { forwardedFor?: string } = {}): Promise<RelayParty> {
    const url = `${baseUrl.replace(/^http/, 'ws')}/v1/provisioning`;
    const socket = new WebSocket(url, options.forwardedFor === undefined ? {} : { headers: { 'x-forwarded-for': options.forwardedFor } });
    return new Promise((resolve, reject) => {
      socket.once('open', () => {
        resolve(new RelayParty(socket));
      });
      socket.once('error', reject);
    });
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
    this.#waiters.clear();
  }

  send(frame: ProvisioningClientFrame): void {
    this.socket.send(encodeProvisioningClientFrame(frame));
  }

  /** Sends bytes as they are (binary), or a string as a text message. */
  sendRaw(data: Uint8Array | string): void {
    this.socket.send(data);
  }

  /** Frames received and not yet taken. */
  get pending(): readonly ProvisioningServerFrame[] {
    return this.#frames;
  }

  /**
   * The next frame, which must be of `kind`.
   * @throws on timeout, if the socket closes first, or if the next frame is of another kind.
   */
  async next<K extends ProvisioningServerFrame['kind']>(kind: K, timeoutMs = 10_000): Promise<Extract<ProvisioningServerFrame, { kind: K }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.#frames.shift();
      if (frame !== undefined) {
        if (frame.kind !== kind) throw new Error(`expected a ${kind} frame, got ${frame.kind}`);
        return frame as Extract<ProvisioningServerFrame, { kind: K }>;
      }
      if (this.socket.readyState !== WebSocket.OPEN) throw new Error(`socket closed while waiting for a ${kind} frame`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no ${kind} frame within ${timeoutMs} ms`);
      await wakeOrTimeout(this.#waiters, remaining);
    }
  }

  /** The bodies of the next `count` frames, which must all be messages. */
  async messages(count: number): Promise<Uint8Array[]> {
    const out = [];
    for (let i = 0; i < count; i++) out.push((await this.next('message')).body);
    return out;
  }

  /** Sends `create` and returns the channel's address. */
  async create(): Promise<Uint8Array> {
    this.send({ kind: 'create' });
    return (await this.next('address')).address;
  }

  /** Sends `join` and waits for `joined`. */
  async join(address: Uint8Array): Promise<void> {
    this.send({ kind: 'join', address });
    await this.next('joined');
  }

  close(): Promise<{ code: number; reason: string }> {
    this.socket.close(1000);
    return this.closed;
  }
}
