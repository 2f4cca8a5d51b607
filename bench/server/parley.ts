/**
 * The Parley workload: sender/recipient pairs of real accounts on a real
 * server process, each device on its own raw `ws` socket. A sender's lane
 * sends one envelope per send to its recipient; the sender's `sent` answer
 * (given after the commit) completes the send, and the recipient acknowledges
 * every envelope, in one ack frame per event-loop turn.
 *
 * Recipients check what they get: every envelope comes from their own sender,
 * with ids increasing along the mailbox, and the first one is read by the
 * real decoder too.
 *
 * Given several nodes of a cluster, the devices are spread over them: lane
 * i's sender on node i mod n and its recipient on the next node, so that on
 * two or more nodes every envelope crosses from one node to another.
 */
import { once } from 'node:events';

import { decodeServerFrames, encodeClientFrame, limits } from '@parley/protocol';
import type WebSocket from 'ws';

import { TestAccount, type TestDevice } from '../../testing/device.js';
import type { ServerProcess } from '../../testing/server.js';
import type { Lane, Sink, Workload } from './driver.js';
import { checkEnvelopes, envelopeId, readStamp, SendFrames, splitFrames, TAG } from './frames.js';
import { scrape } from './metrics.js';
import { inBatches } from '../lib/batches.js';
import { openDrained } from '../lib/socket.js';

/** Registrations and logins run this many at a time (each registration makes a Kyber key pair here). */
const SETUP_CONCURRENCY = 8;
/** How long `settle` waits for the server to delete every acknowledged envelope. */
const SETTLE_TIMEOUT_MS = 30_000;
/** Frames a device may wait for while connecting. */
const CONNECT_TIMEOUT_MS = 30_000;

export interface ParleyWorkload extends Workload {
  /** Bytes of one send frame on the wire (before WebSocket framing). */
  readonly frameBytes: number;
  close(): Promise<void>;
}

/** A frame the workload did not expect, decoded for the error message. */
const describe = (frame: Buffer) => JSON.stringify(decodeServerFrames(new Uint8Array(frame)), (_, v: unknown) => (v instanceof Uint8Array ? `${v.length} bytes` : v));

/** Logs in, opens a socket, authenticates and waits until the (empty) mailbox is drained. */
async function connect(wsUrl: string, device: TestDevice): Promise<WebSocket> {
  const token = Buffer.from(await device.login(), 'base64url');
  return openDrained(wsUrl, token, device.username, CONNECT_TIMEOUT_MS);
}

/**
 * A recipient's acknowledgements: the ids added in one turn of the event loop
 * go out together, in frames of at most MAX_ACKS_PER_FRAME, and leave
 * `acks.pending` (which the caller raised as each envelope came).
 */
export function ackInBatches(socket: WebSocket, acks: { pending: number }): (id: number) => void {
  let ids: number[] = [];
  const flush = () => {
    for (let start = 0; start < ids.length; start += limits.MAX_ACKS_PER_FRAME) {
      socket.send(encodeClientFrame({ kind: 'ack', ids: ids.slice(start, start + limits.MAX_ACKS_PER_FRAME) }));
    }
    acks.pending -= ids.length;
    ids = [];
  };
  return (id) => {
    if (ids.length === 0) setImmediate(flush);
    ids.push(id);
  };
}

/** Receives, checks and acknowledges one pair's envelopes (its `message` listener is the socket's only one). */
export function receive(socket: WebSocket, lane: number, bodyBytes: number, sink: Sink, acks: { pending: number }): void {
  let lastId = 0;
  let checked = false;
  const ack = ackInBatches(socket, acks);
  socket.on('message', (data: Buffer) => {
    const now = performance.now();
    if (!checked) {
      checked = true;
      try {
        checkEnvelopes(data, bodyBytes);
      } catch (error) {
        sink.failed(error as Error);
      }
    }
    for (const frame of splitFrames(data)) {
      if (frame[0] !== TAG.envelope) {
        sink.failed(new Error(`recipient ${lane}: unexpected ${describe(frame)}`));
        return;
      }
      const id = envelopeId(frame);
      const stamp = readStamp(frame, bodyBytes);
      if (id <= lastId || stamp.lane !== lane) sink.failed(new Error(`recipient ${lane}: envelope ${id} out of order or from another sender`));
      lastId = id;
      sink.delivered(stamp.sentAt, now);
      acks.pending++;
      ack(id);
    }
  });
}

/** Registers `pairs` senders and recipients, connects all of them (spread over `nodes`) and wires them to `sink`. */
export async function parleyWorkload(nodes: readonly ServerProcess[], pairs: number, bodyBytes: number, sink: Sink): Promise<ParleyWorkload> {
  const tag = Math.random().toString(36).slice(2, 8);
  const server = nodes[0]!;
  const accounts = await inBatches(2 * pairs, (i) => TestAccount.register(server.url, `bench_${tag}_${i < pairs ? 's' : 'r'}${i % pairs}`), { concurrency: SETUP_CONCURRENCY });
  const devices = accounts.map((a) => a.devices[0]!);
  /** Device i: sender i % pairs on node i, its recipient on the next node. */
  const nodeOf = (i: number) => nodes[((i % pairs) + (i < pairs ? 0 : 1)) % nodes.length]!;
  const sockets = await inBatches(devices.length, (i) => connect(nodeOf(i).wsUrl, devices[i]!), { concurrency: SETUP_CONCURRENCY });
  const onClose = (code: number) => {
    sink.failed(new Error(`a socket closed (${code}) during the run`));
  };
  for (const socket of sockets) socket.on('close', onClose);

  const acks = { pending: 0 };
  const lanes: Lane[] = [];
  let frameBytes = 0;
  for (let lane = 0; lane < pairs; lane++) {
    const [sender, recipient] = [sockets[lane]!, sockets[pairs + lane]!];
    const to = devices[pairs + lane]!;
    const frames = new SendFrames({ username: to.username, deviceId: to.deviceId, registrationId: to.registrationId }, bodyBytes);
    frameBytes = frames.bytes;
    sender.on('message', (data: Buffer) => {
      for (const frame of splitFrames(data)) {
        if (frame[0] === TAG.sent) sink.completed(lane);
        else sink.failed(new Error(`sender ${lane}: unexpected ${describe(frame)}`));
      }
    });
    receive(recipient, lane, bodyBytes, sink, acks);
    lanes.push({
      send: (sentAt) => {
        sender.send(frames.next(sentAt, lane));
      },
    });
  }

  return {
    lanes,
    frameBytes,
    async settle() {
      const deadline = performance.now() + SETTLE_TIMEOUT_MS;
      while (acks.pending > 0 || (await scrape(server.url)).get('parley_mailbox_envelopes') !== 0) {
        if (performance.now() > deadline) throw new Error('acknowledged envelopes were not deleted in time');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      for (const socket of sockets) socket.off('close', onClose);
      await Promise.all(
        sockets.map((socket) => {
          socket.close(1000);
          return once(socket, 'close');
        }),
      );
    },
  };
}
