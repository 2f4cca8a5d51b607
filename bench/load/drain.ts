/**
 * Draining a deep mailbox: `depth` opaque envelopes queued for one offline
 * device by several connected senders, then that device comes online and
 * takes them all, acknowledging each message's envelopes as it reads them
 * (the server pushes within its in-flight window, so acknowledging is what
 * keeps the drain going). Timed from its `auth` frame to its `drained` frame.
 */
import { once } from 'node:events';

import { decodeServerFrames, encodeClientFrame, limits } from '@parley/protocol';
import WebSocket from 'ws';

import { SendFrames, splitFrames, TAG } from '../server/frames.js';
import { scrape } from '../server/metrics.js';
import { login, type Account } from './accounts.js';
import type { DrainAnswer } from './commands.js';
import { shares } from './stats.js';
import { BODY_BYTES } from './workloads.js';

/** Sends each filling sender keeps in flight (the server holds up to 256 per connection before it stops reading). */
const FILL_WINDOW = 128;
const DRAIN_TIMEOUT_MS = 120_000;

/** Queues `depth` envelopes for `target` from `senders`; resolves once every send is answered `sent`. */
async function fill(senders: readonly WebSocket[], target: Account, depth: number): Promise<void> {
  await Promise.all(
    shares(depth, senders.length).map(
      (share, lane) =>
        new Promise<void>((resolve, reject) => {
          const socket = senders[lane]!;
          const frames = new SendFrames({ username: target.username, deviceId: target.deviceId, registrationId: target.registrationId }, BODY_BYTES);
          let [sent, answered] = [0, 0];
          const send = () => {
            socket.send(frames.next(performance.now(), lane));
            sent++;
          };
          socket.removeAllListeners('message');
          socket.on('message', (data: Buffer) => {
            for (const frame of splitFrames(data)) {
              if (frame[0] !== TAG.sent) {
                reject(new Error(`filling the mailbox: ${JSON.stringify(decodeServerFrames(new Uint8Array(frame)), (_, v: unknown) => (v instanceof Uint8Array ? undefined : v))}`));
                return;
              }
              answered++;
              if (sent < share) send();
            }
            if (answered === share) {
              socket.removeAllListeners('message');
              resolve();
            }
          });
          if (share === 0) resolve();
          while (sent < Math.min(share, FILL_WINDOW)) send();
        }),
    ),
  );
}

/** Connects `target` and times taking `depth` envelopes; resolves once it has them all and `drained`. */
async function take(wsUrl: string, token: Uint8Array, target: Account, depth: number): Promise<number> {
  const socket = new WebSocket(wsUrl, { perMessageDeflate: false });
  await once(socket, 'open');
  try {
    const started = performance.now();
    const done = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${target.username}: drain not done in ${DRAIN_TIMEOUT_MS} ms`));
      }, DRAIN_TIMEOUT_MS);
      let received = 0;
      socket.on('message', (data: Buffer) => {
        const ids: number[] = [];
        for (const frame of decodeServerFrames(new Uint8Array(data))) {
          if (frame.kind === 'envelope') ids.push(frame.envelope.id);
          else if (frame.kind === 'drained') {
            clearTimeout(timer);
            if (received + ids.length === depth) resolve(performance.now() - started);
            else reject(new Error(`drained after ${received + ids.length} of ${depth} envelopes`));
          } else if (frame.kind !== 'ready') reject(new Error(`${target.username}: unexpected ${frame.kind} frame`));
        }
        received += ids.length;
        for (let start = 0; start < ids.length; start += limits.MAX_ACKS_PER_FRAME) {
          socket.send(encodeClientFrame({ kind: 'ack', ids: ids.slice(start, start + limits.MAX_ACKS_PER_FRAME) }));
        }
      });
      socket.once('close', (code) => {
        reject(new Error(`${target.username}: socket closed (${code}) while draining`));
      });
    });
    socket.send(encodeClientFrame({ kind: 'auth', token }));
    return await done;
  } finally {
    socket.removeAllListeners('close');
    socket.close(1000);
    await once(socket, 'close');
  }
}

/** Waits until the server has deleted every acknowledged envelope. */
async function emptied(serverUrl: string): Promise<void> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while ((await scrape(serverUrl)).get('parley_mailbox_envelopes') !== 0) {
    if (performance.now() > deadline) throw new Error('the drained mailbox was not emptied in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Fills `target`'s mailbox to `depth` from `senders`, then times its drain. */
export async function drain(serverUrl: string, wsUrl: string, senders: readonly WebSocket[], target: Account, depth: number): Promise<DrainAnswer> {
  const filling = performance.now();
  await fill(senders, target, depth);
  const fillMs = performance.now() - filling;
  const token = await login(serverUrl, target);
  const drainMs = await take(wsUrl, token, target, depth);
  await emptied(serverUrl);
  return { fillMs, drainMs };
}
