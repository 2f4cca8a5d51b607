/**
 * Re-key after a removal, end to end. A member has just been removed, so the
 * sender's first message goes under a fresh sender key (a new distribution id,
 * as packages/client does): the sender creates its distribution message,
 * encrypts it over its one-to-one session with every remaining device, sends
 * all the copies in one `send` (as the client's `send` does) and waits for
 * `sent`; then it encrypts the group message once and hands it to the server
 * by multicast.
 *
 * Timed from the start of the sender's work until every remaining device has
 * decrypted the distribution message (Double Ratchet), processed it, and
 * decrypted the group message with it. Each device handles its envelopes one
 * at a time, in order; the removed member's devices must get nothing.
 */
import {
  createSenderKeyDistributionMessage,
  decodeServerFrames,
  decryptMessage,
  encodeClientFrame,
  encryptMessage,
  groupDecrypt,
  groupEncrypt,
  processSenderKeyDistributionMessage,
  SENDER_KEY_MESSAGE_TYPE,
  type Destination,
  type Envelope,
} from '@parley/protocol';

import { provider } from '../../testing/device.js';
import { groupRecipients } from './cipher.js';
import { settle } from './fanout.js';
import type { Device, Member } from './members.js';
import { encodeMulticast } from './multicast.js';
import type { GroupWire } from './wire.js';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** ms until every device of `remaining` (the sender's own device aside) has both decrypted. */
export async function rekey(wire: GroupWire, url: string, remaining: readonly Member[], plaintext: Uint8Array): Promise<number> {
  const sender = wire.sender;
  const recipients = groupRecipients(
    remaining.map((m) => m.username),
    (username, deviceId) => remaining.find((m) => m.username === username)!.devices[deviceId - 1]!.registrationId,
  );
  const devices = remaining.flatMap((m) => m.devices).filter((d) => d !== sender);
  const distributionId = crypto.randomUUID();

  const queues = new Map<Device, Promise<void>>();
  const handle = async (device: Device, envelope: Envelope) => {
    const from = { name: envelope.source, deviceId: envelope.sourceDevice };
    if (from.name !== sender.username || from.deviceId !== sender.deviceId) throw new Error('an envelope from someone else than the sender');
    if (envelope.type === SENDER_KEY_MESSAGE_TYPE) {
      const opened = await groupDecrypt(provider, device.senderKeys, from, envelope.body);
      if (!sameBytes(opened, plaintext)) throw new Error(`${device.username}.${device.deviceId}: the group message decrypted to other bytes`);
    } else {
      const distribution = await decryptMessage(provider, device.stores, from, { type: envelope.type as 2 | 3, body: envelope.body });
      await processSenderKeyDistributionMessage(device.senderKeys, from, distribution);
    }
  };
  const done = wire.expect(devices, 2 * devices.length, (device, frame) => {
    const [decoded] = decodeServerFrames(new Uint8Array(frame));
    if (decoded?.kind !== 'envelope') throw new Error('not an envelope');
    const next = (queues.get(device) ?? Promise.resolve()).then(() => handle(device, decoded.envelope));
    queues.set(device, next);
    return next;
  });

  const start = performance.now();
  const skdm = await createSenderKeyDistributionMessage(provider, sender.senderKeys, sender.address, distributionId);
  const destinations: Destination[] = [];
  for (const recipient of recipients) {
    const messages = [];
    for (const d of recipient.devices) {
      const sealed = await encryptMessage(provider, sender.stores, { name: recipient.username, deviceId: d.deviceId }, skdm.serialized, Date.now());
      messages.push({ deviceId: d.deviceId, registrationId: d.registrationId, type: sealed.type, body: sealed.body });
    }
    destinations.push({ username: recipient.username, messages });
  }
  const keyRequest = wire.requestIds(1);
  await wire.send([encodeClientFrame({ kind: 'send', requestId: keyRequest, destinations })], keyRequest);

  const sealed = await groupEncrypt(provider, sender.senderKeys, sender.address, distributionId, plaintext);
  const id = wire.requestIds(1);
  await wire.send([encodeMulticast(id, sealed.serialized, recipients)], id);
  const end = await done;
  await settle(url);
  return end - start;
}
