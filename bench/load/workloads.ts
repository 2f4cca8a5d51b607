/**
 * The generator's raw Parley workloads over already connected devices, for
 * bench/server's drivers. Lane i sends from account i to account lanes + i.
 *
 * - `opaque`: every send is one pre-built frame with a stamped 32-byte body
 *   (bench/server/frames.ts), and recipients read only the stamp: the server's
 *   own cost, with the least work in this process.
 * - `protocol`: every message is a real Double Ratchet message of a
 *   @parley/protocol session (built in `buildSessions`), encrypted before the
 *   send and decrypted on delivery; latency includes both.
 *
 * In both, recipients acknowledge every envelope, and `settle` waits until
 * the server has deleted them all.
 */
import {
  decodeServerFrames,
  decryptMessage,
  encodeClientFrame,
  encryptMessage,
  processPreKeyBundle,
  type MessageType,
} from '@parley/protocol';
import type WebSocket from 'ws';

import { provider } from '../../testing/device.js';
import type { Lane, Sink, Workload } from '../server/driver.js';
import { SendFrames, splitFrames, TAG } from '../server/frames.js';
import { scrape } from '../server/metrics.js';
import { ackInBatches, receive } from '../server/parley.js';
import type { Account } from './accounts.js';

/** Bytes of every message body (opaque) or plaintext (protocol): a stamp (time, lane) and filler. */
export const BODY_BYTES = 32;
/** How long `settle` waits for the server to delete every acknowledged envelope. */
const SETTLE_TIMEOUT_MS = 60_000;

export interface Attached extends Workload {
  /** Removes the workload's listeners from its sockets. */
  detach(): void;
}

/** Waits until nothing is left to acknowledge here and every mailbox on the server is empty. */
export async function settled(serverUrl: string, acks: { pending: number }): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (acks.pending > 0 || (await scrape(serverUrl)).get('parley_mailbox_envelopes') !== 0) {
    if (performance.now() > deadline) throw new Error('acknowledged envelopes were not deleted in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Wires `lanes` pairs of sockets (account i → account lanes + i) to `sink`, and `close` on any of them to a failure. */
function attach(sockets: readonly WebSocket[], lanes: number, sink: Sink, wire: (lane: number, sender: WebSocket, recipient: WebSocket) => Lane): Lane[] & { detach: () => void } {
  const used = sockets.slice(0, 2 * lanes);
  if (used.length < 2 * lanes) throw new Error(`${2 * lanes} connections needed, ${used.length} open`);
  const onClose = (code: number) => {
    sink.failed(new Error(`a socket closed (${code}) during the run`));
  };
  for (const socket of used) {
    socket.removeAllListeners('message');
    socket.on('close', onClose);
  }
  const list = Array.from({ length: lanes }, (_, lane) => wire(lane, used[lane]!, used[lanes + lane]!));
  return Object.assign(list, {
    detach: () => {
      for (const socket of used) {
        socket.removeAllListeners('message');
        socket.off('close', onClose);
      }
    },
  });
}

/** A sender's answers: `sent` completes its lane; anything else fails the run. */
function answers(sender: WebSocket, lane: number, sink: Sink): void {
  sender.on('message', (data: Buffer) => {
    for (const frame of splitFrames(data)) {
      if (frame[0] === TAG.sent) sink.completed(lane);
      else sink.failed(new Error(`sender ${lane}: unexpected frame (tag ${frame[0]})`));
    }
  });
}

/** Pre-built opaque sends between `lanes` pairs. */
export function opaqueWorkload(serverUrl: string, sockets: readonly WebSocket[], accounts: readonly Account[], lanes: number, sink: Sink): Attached {
  const acks = { pending: 0 };
  const list = attach(sockets, lanes, sink, (lane, sender, recipient) => {
    const to = accounts[lanes + lane]!;
    const frames = new SendFrames({ username: to.username, deviceId: to.deviceId, registrationId: to.registrationId }, BODY_BYTES);
    answers(sender, lane, sink);
    receive(recipient, lane, BODY_BYTES, sink, acks);
    return {
      send: (sentAt) => {
        sender.send(frames.next(sentAt, lane));
      },
    };
  });
  return { lanes: list, settle: () => settled(serverUrl, acks), detach: list.detach };
}

/** Bytes of one opaque send frame to `account`, for the echo ceiling's frames. */
export const opaqueFrameBytes = (account: Account): number =>
  new SendFrames({ username: account.username, deviceId: account.deviceId, registrationId: account.registrationId }, BODY_BYTES).bytes;

/**
 * Double Ratchet sessions from account i to account pairs + i, for i below
 * `pairs`, as a client builds them: the sender processes the recipient's
 * bundle (its signed and Kyber prekeys, as the server would hand them out),
 * sends a first message the recipient decrypts, and decrypts the answer. Those
 * two go device to device in this process; every later message is an
 * ordinary SignalMessage.
 */
export async function buildSessions(accounts: readonly Account[], pairs: number): Promise<void> {
  const hello = new TextEncoder().encode('hello');
  for (let i = 0; i < pairs; i++) {
    const [from, to] = [accounts[i]!.kept!, accounts[pairs + i]!.kept!];
    await processPreKeyBundle(provider, from.stores, to.address, to.bundle, Date.now());
    const first = await encryptMessage(provider, from.stores, to.address, hello, Date.now());
    await decryptMessage(provider, to.stores, from.address, first);
    const reply = await encryptMessage(provider, to.stores, from.address, hello, Date.now());
    await decryptMessage(provider, from.stores, to.address, reply);
  }
}

/** Real Double Ratchet messages between `lanes` pairs of the accounts that keep stores. */
export function protocolWorkload(serverUrl: string, sockets: readonly WebSocket[], accounts: readonly Account[], lanes: number, sink: Sink): Attached {
  const acks = { pending: 0 };
  const list = attach(sockets, lanes, sink, (lane, sender, recipient) => {
    const [from, to] = [accounts[lane]!, accounts[lanes + lane]!];
    if (from.kept === undefined || to.kept === undefined) throw new Error(`account ${lane} or ${lanes + lane} keeps no protocol stores`);
    const [fromKept, toKept] = [from.kept, to.kept];
    answers(sender, lane, sink);

    // Decrypt in arrival order (the ratchet takes them in any order, but in order is the common case), then acknowledge.
    let decrypted: Promise<void> = Promise.resolve();
    const ack = ackInBatches(recipient, acks);
    recipient.on('message', (data: Buffer) => {
      for (const frame of decodeServerFrames(new Uint8Array(data))) {
        if (frame.kind !== 'envelope') {
          sink.failed(new Error(`recipient ${lane}: unexpected ${frame.kind} frame`));
          return;
        }
        const { id, type, body } = frame.envelope;
        acks.pending++;
        decrypted = decrypted.then(async () => {
          const plaintext = await decryptMessage(provider, toKept.stores, fromKept.address, { type: type as MessageType, body });
          const stamp = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
          if (stamp.readUInt32LE(8) !== lane) throw new Error(`recipient ${lane}: a message from another sender`);
          sink.delivered(stamp.readDoubleLE(0), performance.now());
          ack(id);
        });
        decrypted.catch((error: unknown) => {
          sink.failed(error as Error);
        });
      }
    });

    let requestId = 0;
    return {
      send: (sentAt) => {
        const plaintext = Buffer.alloc(BODY_BYTES, 0x5a);
        plaintext.writeDoubleLE(sentAt, 0);
        plaintext.writeUInt32LE(lane, 8);
        // encryptMessage queues per address, so the frames go out in the order of the sends.
        encryptMessage(provider, fromKept.stores, toKept.address, plaintext, Date.now()).then(
          (message) => {
            requestId = (requestId + 1) % 0x7fffffff;
            const messages = [{ deviceId: to.deviceId, registrationId: to.registrationId, type: message.type, body: message.body }];
            sender.send(encodeClientFrame({ kind: 'send', requestId, destinations: [{ username: to.username, messages }] }));
          },
          (error: unknown) => {
            sink.failed(error as Error);
          },
        );
      },
    };
  });
  return { lanes: list, settle: () => settled(serverUrl, acks), detach: list.detach };
}
