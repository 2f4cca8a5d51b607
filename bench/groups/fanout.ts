/**
 * Server fan-out of one group message to every device of N members (2N − 1
 * devices: the sender's own device gets none), through a real server with
 * every device connected: as one `multicast`, and as its peer, N `send`s of
 * the same body (one per member account, naming both its devices).
 *
 * - latency: one message at a time on an idle server, from the moment its
 *   frames leave the sender until every device has received the envelope and
 *   handed its ack to the socket; frames are encoded before the clock starts.
 * - stream: `messages` group messages sent back to back (the server's
 *   backpressure paces the sender); envelopes acknowledged per second, from
 *   the first frame sent to the last ack, with the server's CPU per envelope
 *   from its /metrics.
 *
 * The receivers only count and acknowledge (no decryption), as bench/server's
 * do; they share the machine's cores with the server.
 */
import { scrape, serverView } from '../server/metrics.js';
import type { Device } from './members.js';
import { encodeMulticast, encodeSends, type MulticastRecipient } from './multicast.js';
import type { GroupWire } from './wire.js';

export type FanoutKind = 'multicast' | 'send';

/** Builds the frames of one group message, with their first request id. */
function frames(wire: GroupWire, kind: FanoutKind, body: Uint8Array, recipients: readonly MulticastRecipient[]): { frames: Uint8Array[]; first: number } {
  if (kind === 'multicast') {
    const first = wire.requestIds(1);
    return { frames: [encodeMulticast(first, body, recipients)], first };
  }
  const first = wire.requestIds(recipients.length);
  return { frames: encodeSends(first, body, recipients), first };
}

const countOnly = () => undefined;

/** Waits until the server has deleted every acknowledged envelope. */
export async function settle(url: string): Promise<void> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const left = (await scrape(url)).get('parley_mailbox_envelopes');
    if (left === 0) return;
    if (performance.now() > deadline) throw new Error(`${left} acknowledged envelopes were not deleted in 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** ms from the first frame leaving the sender to the last device's ack, for one group message. */
export async function fanoutLatency(
  wire: GroupWire,
  url: string,
  kind: FanoutKind,
  body: Uint8Array,
  recipients: readonly MulticastRecipient[],
  devices: readonly Device[],
): Promise<number> {
  const message = frames(wire, kind, body, recipients);
  const delivered = wire.expect(devices, devices.length, countOnly);
  const start = performance.now();
  const answered = wire.send(message.frames, message.first);
  const [end] = await Promise.all([delivered, answered]);
  await settle(url);
  return end - start;
}

export interface StreamResult {
  readonly envelopesPerSecond: number;
  readonly serverCpuPerEnvelopeUs: number;
}

/** Envelopes acknowledged per second for `bodies.length` group messages sent back to back. */
export async function fanoutStream(
  wire: GroupWire,
  url: string,
  kind: FanoutKind,
  bodies: readonly Uint8Array[],
  recipients: readonly MulticastRecipient[],
  devices: readonly Device[],
): Promise<StreamResult> {
  const messages = bodies.map((body) => frames(wire, kind, body, recipients));
  const expected = bodies.length * devices.length;
  const before = await scrape(url);
  const delivered = wire.expect(devices, expected, countOnly);
  const start = performance.now();
  const answered = Promise.all(messages.map((m) => wire.send(m.frames, m.first)));
  const [end] = await Promise.all([delivered, answered]);
  await settle(url);
  const view = serverView(before, await scrape(url));
  return { envelopesPerSecond: (expected * 1000) / (end - start), serverCpuPerEnvelopeUs: view.cpuPerEnvelopeUs };
}
