/**
 * A fuzz target for the server's WebSocket: mutated frames sent, as a signed-in
 * device, to a server running in this process. After each input the device
 * sends a probe (a send to an account that does not exist) and waits for its
 * answer, and for the input's own answer if it decodes as a send: the
 * connection survived, so the input "decoded". A connection closed with
 * MALFORMED_FRAME (4400) or TOO_BIG (1009) refused it, as documented; any other
 * close (INTERNAL 1011, a dropped socket) or no answer is a failure.
 */
import { decodeClientFrame, encodeClientFrame, isProtocolError, type ClientFrame } from '@parley/protocol';

import { CloseCode } from '../../../packages/server/src/index.js';
import { Connection, TestAccount, type TestDevice } from '../../device.js';
import type { FuzzTarget } from '../engine.js';
import { freshServer, tokens } from './server.js';

/** Request ids of probes: far above the seeds' ids, so that no mutated frame answers for a probe. */
const FIRST_PROBE_ID = 0x7000_0000;
/** Each input is a frame and a probe over loopback, sometimes a new connection and a login: a tenth of a decoder's inputs. */
const WEBSOCKET_RUN_SHARE = 0.1;
const ANSWER_TIMEOUT_MS = 4_000;
const REFUSING_CLOSES: ReadonlySet<number> = new Set([CloseCode.MALFORMED_FRAME, CloseCode.TOO_BIG]);

/** A documented refusal: the server closed this connection, and only it, with a code that says the frame was at fault. */
export class FrameRefusal extends Error {
  override readonly name = 'FrameRefusal';
}

/** The request id an input's answer will carry, if it decodes as a send or multicast. */
function requestIdOf(input: Uint8Array): number | undefined {
  let frame: ClientFrame;
  try {
    frame = decodeClientFrame(input);
  } catch (error) {
    if (isProtocolError(error)) return undefined;
    throw error;
  }
  return frame.kind === 'send' || frame.kind === 'multicast' ? frame.requestId : undefined;
}

/** Frames a signed-in device sends: a send and a multicast to both of Bob's devices, and an ack. */
function seeds(bob: TestAccount): Uint8Array[] {
  const devices = bob.devices.map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId }));
  const frames: ClientFrame[] = [
    { kind: 'send', requestId: 1, destinations: [{ username: bob.username, messages: devices.map((d) => ({ ...d, type: 3, body: new Uint8Array(64).fill(d.deviceId) })) }] },
    { kind: 'multicast', requestId: 2, type: 7, body: new Uint8Array(48).fill(9), recipients: [{ username: bob.username, devices }] },
    { kind: 'ack', ids: [1, 2, 3] },
  ];
  return frames.map(encodeClientFrame);
}

export const websocketTarget: FuzzTarget = {
  name: 'websocket-client-frame',
  title: 'ClientFrame sent to the server',
  hangMs: ANSWER_TIMEOUT_MS + 1_000,
  runShare: WEBSOCKET_RUN_SHARE,
  async open() {
    const { server, close } = await freshServer();
    const wsUrl = `${server.url.replace(/^http/, 'ws')}/v1/websocket`;
    const alice = await TestAccount.register(server.url, 'alice');
    const bob = await TestAccount.register(server.url, 'bob');
    await bob.link(bob.devices[0]!);
    const device: TestDevice = alice.devices[0]!;
    const token = tokens(device);
    let connection: Connection | undefined;
    let probeId = FIRST_PROBE_ID;

    /** The open connection, or a new one; a connection that closed since with a code that blames no frame is a failure. */
    const connected = async () => {
      if (connection !== undefined) {
        if (connection.socket.readyState === connection.socket.OPEN) return connection;
        const { code, reason } = await connection.closed;
        if (!REFUSING_CLOSES.has(code)) throw new Error(`the connection closed ${code} after the last input: ${reason}`);
      }
      connection = await Connection.open(wsUrl);
      connection.send({ kind: 'auth', token: new Uint8Array(Buffer.from(await token(), 'base64url')) });
      await connection.next('ready');
      return connection;
    };

    /** Resolves once request `id` is answered; throws FrameRefusal if the connection closes with a refusing code first, a failure otherwise. */
    const answered = async (socket: Connection, id: number) => {
      const answer = socket.take((f) => (f.kind === 'sent' || f.kind === 'refused') && f.requestId === id, `answer to request ${id}`, ANSWER_TIMEOUT_MS);
      const closed = await Promise.race([answer.then(() => undefined), socket.closed]);
      if (closed === undefined) return;
      const message = `closed ${closed.code}: ${closed.reason}`;
      throw REFUSING_CLOSES.has(closed.code) ? new FrameRefusal(message) : new Error(message);
    };

    return {
      seeds: seeds(bob),
      async decode(input) {
        const socket = await connected();
        const own = requestIdOf(input);
        const probe = probeId++;
        socket.socket.send(input);
        socket.send({ kind: 'send', requestId: probe, destinations: [{ username: 'nobody_at_all', messages: [{ deviceId: 1, registrationId: 1, type: 1, body: Uint8Array.of(1) }] }] });
        await Promise.all([answered(socket, probe), own === undefined ? undefined : answered(socket, own)]);
      },
      isTypedError: (error) => error instanceof FrameRefusal,
      async close() {
        connection?.socket.close();
        await close();
      },
    };
  },
};
