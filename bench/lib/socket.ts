/**
 * A raw device WebSocket for the benchmarks: opened, authenticated with a
 * login token, and handed over once the server says the (empty) mailbox is
 * drained, with nothing else received on the way.
 */
import { once } from 'node:events';

import { decodeServerFrames, encodeClientFrame } from '@parley/protocol';
import WebSocket from 'ws';

/** Opens `wsUrl`, authenticates with `token` and waits for `drained`; `name` is for errors. */
export async function openDrained(wsUrl: string, token: Uint8Array, name: string, timeoutMs: number): Promise<WebSocket> {
  const socket = new WebSocket(wsUrl, { perMessageDeflate: false });
  await once(socket, 'open');
  const drained = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${name}: no drained frame in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('message', (data: Buffer) => {
      for (const frame of decodeServerFrames(new Uint8Array(data))) {
        if (frame.kind === 'drained') {
          clearTimeout(timer);
          socket.removeAllListeners('message');
          resolve();
        } else if (frame.kind !== 'ready') {
          reject(new Error(`${name}: unexpected ${frame.kind} frame while connecting`));
        }
      }
    });
    socket.once('close', (code) => {
      reject(new Error(`${name}: socket closed (${code}) while connecting`));
    });
  });
  socket.send(encodeClientFrame({ kind: 'auth', token }));
  await drained;
  return socket;
}
