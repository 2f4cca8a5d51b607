/**
 * The members' sockets during a run: the sender's answers (`sent`, `refused`)
 * matched to its requests, and every other device's envelopes handed to the
 * current phase, which says when a device has handled one; handled envelopes
 * are acknowledged in one ack frame per device per event-loop turn, as
 * bench/server's recipients do. An envelope pushed again on the same
 * connection is acknowledged again and counted in `duplicates`, not handled. An envelope for a device outside the phase,
 * or any frame the bench did not expect, fails the phase.
 */
import { decodeServerFrames, encodeClientFrame, limits, type ServerFrame } from '@parley/protocol';

import { envelopeId, splitFrames, TAG } from '../server/frames.js';
import type { Device, Member } from './members.js';

/** What a phase does with each envelope: resolves once the device has handled it (then it is acknowledged). */
export type EnvelopeHandler = (device: Device, frame: Buffer) => Promise<void> | void;

interface Phase {
  readonly devices: ReadonlySet<Device>;
  readonly expected: number;
  readonly onEnvelope: EnvelopeHandler;
  /** Envelope ids each device got in this phase: a repeat is acknowledged again and counted, not handled (as clients discard repeats by id). */
  readonly seen: Map<Device, Set<number>>;
  /** Envelopes handled (repeats aside); their acks go out in the next flush. */
  handled: number;
  resolve(at: number): void;
  reject(error: Error): void;
}

const ANSWER_TIMEOUT_MS = 120_000;

/** Decoded for error messages only. */
const describe = (frame: Buffer) =>
  JSON.stringify(decodeServerFrames(new Uint8Array(frame)), (_, v: unknown) => (v instanceof Uint8Array ? `${v.length} bytes` : v));

export class GroupWire {
  readonly sender: Device;
  #requestId = 0;
  readonly #answers = new Map<number, { resolve(frame: ServerFrame): void }>();
  #phase: Phase | undefined;
  readonly #pendingAcks = new Map<Device, number[]>();
  #failure: Error | undefined;
  /** Envelopes pushed a second time on the same connection, over the whole run. */
  duplicates = 0;

  constructor(members: readonly Member[]) {
    this.sender = members[0]!.devices[0];
    const senderSocket = this.sender.socket!;
    senderSocket.on('message', (data: Buffer) => {
      for (const frame of decodeServerFrames(new Uint8Array(data))) {
        if (frame.kind === 'sent' || frame.kind === 'refused') {
          const waiter = this.#answers.get(frame.requestId);
          this.#answers.delete(frame.requestId);
          if (waiter === undefined) this.#fail(new Error(`an answer to request ${frame.requestId}, which is not waited for`));
          else waiter.resolve(frame);
        } else {
          this.#fail(new Error(`the sender got an unexpected ${frame.kind} frame`));
        }
      }
    });
    for (const member of members) {
      for (const device of member.devices) {
        const socket = device.socket!;
        socket.on('close', (code: number) => {
          this.#fail(new Error(`${device.username}.${device.deviceId}: socket closed (${code}) during the run`));
        });
        if (device === this.sender) continue;
        socket.on('message', (data: Buffer) => {
          this.#receive(device, data);
        });
      }
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#phase?.reject(error);
  }

  #receive(device: Device, data: Buffer): void {
    for (const frame of splitFrames(data)) {
      const phase = this.#phase;
      if (frame[0] !== TAG.envelope || phase === undefined || !phase.devices.has(device)) {
        this.#fail(new Error(`${device.username}.${device.deviceId}: unexpected ${describe(frame)}`));
        return;
      }
      const id = envelopeId(frame);
      let seen = phase.seen.get(device);
      if (seen === undefined) phase.seen.set(device, (seen = new Set()));
      if (seen.has(id)) {
        this.duplicates++;
        this.#ack(device, id, phase, false);
        continue;
      }
      seen.add(id);
      const handled = phase.onEnvelope(device, frame);
      if (handled === undefined) this.#ack(device, id, phase, true);
      else {
        handled.then(
          () => {
            this.#ack(device, id, phase, true);
          },
          (error: unknown) => {
            this.#fail(error instanceof Error ? error : new Error(String(error)));
          },
        );
      }
    }
  }

  #ack(device: Device, id: number, phase: Phase, counts: boolean): void {
    if (counts) phase.handled++;
    let ids = this.#pendingAcks.get(device);
    if (ids === undefined) {
      ids = [];
      this.#pendingAcks.set(device, ids);
      setImmediate(() => {
        this.#flush(device, phase);
      });
    }
    ids.push(id);
  }

  #flush(device: Device, phase: Phase): void {
    const ids = this.#pendingAcks.get(device) ?? [];
    this.#pendingAcks.delete(device);
    for (let start = 0; start < ids.length; start += limits.MAX_ACKS_PER_FRAME) {
      device.socket!.send(encodeClientFrame({ kind: 'ack', ids: ids.slice(start, start + limits.MAX_ACKS_PER_FRAME) }));
    }
    if (phase.handled >= phase.expected) phase.resolve(performance.now());
  }

  /** The next `count` request ids, consecutive. */
  requestIds(count: number): number {
    const first = this.#requestId + 1;
    this.#requestId += count;
    return first;
  }

  /**
   * Starts a phase in which `devices` receive `expected` envelopes in all;
   * resolves with the time (performance.now()) the last of them was acknowledged.
   */
  expect(devices: readonly Device[], expected: number, onEnvelope: EnvelopeHandler): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${expected - (this.#phase?.handled ?? 0)} of ${expected} envelopes not acknowledged in ${ANSWER_TIMEOUT_MS} ms`));
      }, ANSWER_TIMEOUT_MS);
      const done = () => {
        clearTimeout(timer);
        this.#phase = undefined;
      };
      this.#phase = {
        devices: new Set(devices),
        expected,
        onEnvelope,
        seen: new Map(),
        handled: 0,
        resolve: (at) => {
          done();
          resolve(at);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
    });
  }

  /** Sends `frames` (whose request ids are `firstRequestId`, +1, …) and resolves once every one is answered `sent`. */
  send(frames: readonly Uint8Array[], firstRequestId: number): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const answers = frames.map(
      (_, i) =>
        new Promise<ServerFrame>((resolve, reject) => {
          const timer = setTimeout(() => {
            reject(new Error(`no answer to request ${firstRequestId + i} in ${ANSWER_TIMEOUT_MS} ms`));
          }, ANSWER_TIMEOUT_MS);
          this.#answers.set(firstRequestId + i, {
            resolve: (frame) => {
              clearTimeout(timer);
              resolve(frame);
            },
          });
        }),
    );
    const socket = this.sender.socket!;
    for (const frame of frames) socket.send(frame);
    return Promise.all(answers).then((all) => {
      const refused = all.find((a) => a.kind === 'refused');
      if (refused?.kind === 'refused') throw new Error(`the server refused a request: ${refused.code} ${refused.message}`);
    });
  }
}
