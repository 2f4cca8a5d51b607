/**
 * The ws echo ceiling as a workload: a child process running echoServer.ts,
 * and one client socket per lane whose frames have the size of a Parley send
 * frame and carry the same stamp. A reply both completes the send and
 * delivers it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';

import type { Lane, Sink, Workload } from './driver.js';
import { body, readStamp, stampBody } from './frames.js';

export interface Echo {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts the echo server and resolves with its URL. @throws if it exits first. */
export async function spawnEcho(): Promise<Echo> {
  const script = fileURLToPath(new URL('echoServer.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const port = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /echo listening on (\d+)/.exec(output);
      if (match !== null) resolve(match[1]!);
    });
    void exited.then(() => {
      reject(new Error(`the echo server exited before listening: ${output}`));
    });
  });
  return {
    url: `ws://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** `lanes` echo clients sending `frameBytes`-byte frames whose last `bodyBytes` bytes are a stamped body. */
export async function echoWorkload(url: string, lanes: number, frameBytes: number, bodyBytes: number, sink: Sink): Promise<Workload & { close(): Promise<void> }> {
  const template = Buffer.concat([Buffer.alloc(frameBytes - bodyBytes, 0xa5), body(bodyBytes)]);
  const sockets = await Promise.all(
    Array.from({ length: lanes }, async () => {
      const socket = new WebSocket(url, { perMessageDeflate: false });
      await once(socket, 'open');
      return socket;
    }),
  );
  const list: Lane[] = sockets.map((socket, lane) => {
    socket.on('message', (data: Buffer) => {
      const now = performance.now();
      const stamp = readStamp(data, bodyBytes);
      if (stamp.lane !== lane || data.length !== frameBytes) sink.failed(new Error(`echo lane ${lane}: a reply that is not its own`));
      sink.delivered(stamp.sentAt, now);
      sink.completed(lane);
    });
    return {
      send: (sentAt) => {
        const frame = Buffer.from(template);
        stampBody(frame, bodyBytes, sentAt, lane);
        socket.send(frame);
      },
    };
  });
  return {
    lanes: list,
    settle: async () => undefined,
    async close() {
      await Promise.all(
        sockets.map((socket) => {
          socket.close(1000);
          return once(socket, 'close');
        }),
      );
    },
  };
}
