/**
 * The untimed part: `count` members registered (two devices each) and
 * connected, and the sender (member 0's first device) holding a one-to-one
 * Double Ratchet session with every other device, built as a real client
 * builds it: bundles fetched from the server (`GET /v1/keys/:username/*`),
 * processPreKeyBundle, a first message each device decrypts, and an answer
 * the sender decrypts. The first message and the answer go device to device
 * in this process rather than through the server; what matters is that later
 * messages on these sessions are ordinary (answered) SignalMessages.
 */
import { decryptMessage, encryptMessage, processPreKeyBundle } from '@parley/protocol';

import { provider } from '../../testing/device.js';
import type { ServerProcess } from '../../testing/server.js';
import { connect, fetchBundles, inBatches, login, registerMember, type Device, type Member } from './members.js';

const HELLO = new TextEncoder().encode('hello');

export async function setUpMembers(server: ServerProcess, count: number): Promise<Member[]> {
  const tag = Math.random().toString(36).slice(2, 8);
  const members = await inBatches(count, 'members registered (2 devices each)', (i) => registerMember(server.url, `g${tag}_m${i}`, i));
  const devices = members.flatMap((m) => m.devices);
  await inBatches(devices.length, 'devices connected', (i) => connect(server.url, server.wsUrl, devices[i]!));

  const sender = members[0]!.devices[0];
  const token = await login(server.url, sender);
  await inBatches(members.length, 'bundles fetched, sessions started', async (i) => {
    const member = members[i]!;
    for (const bundle of await fetchBundles(server.url, token, sender, member.username)) {
      await processPreKeyBundle(provider, sender.stores, { name: member.username, deviceId: bundle.deviceId }, bundle, Date.now());
    }
  });
  const others = devices.filter((d) => d !== sender);
  await inBatches(others.length, 'sessions answered', (i) => answer(sender, others[i]!));
  return members;
}

/** A first message from the sender, which `device` decrypts (building its side), and its answer back. */
async function answer(sender: Device, device: Device): Promise<void> {
  const first = await encryptMessage(provider, sender.stores, device.address, HELLO, Date.now());
  await decryptMessage(provider, device.stores, sender.address, first);
  const reply = await encryptMessage(provider, device.stores, sender.address, HELLO, Date.now());
  await decryptMessage(provider, sender.stores, device.address, reply);
}
