/**
 * Multicasts (one body for many devices: a group message) against a real
 * server process, on each engine: delivered to every named device unchanged,
 * checked against the device sets exactly as a send is, stored whole or not
 * at all, answered under the request-id sequence of sends, and a malformed one
 * closes only its own connection. A full mailbox is in faults.test.ts, which
 * already fills one.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { encodeClientFrame, limits, type Envelope } from '@parley/protocol';

import { CloseCode } from '../errors.js';
import { MAX_ENVELOPE_BYTES, MAX_SEND_STORED_BYTES } from '../limits.js';
import { engineCases, useServer } from '../../../../testing/server.js';
import { everyDevice, TestAccount, to, type Connection, type TestDevice } from '../../../../testing/device.js';

const { MAX_DEVICES_PER_ACCOUNT } = limits;
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);
/** The sender-key message type, as groups use it; the server does not care. */
const TYPE = 7;

describe.each(engineCases)('multicast on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase);
  let counter = 0;
  const name = (prefix: string) => `${prefix}_${++counter}`;

  /** A new account with `devices` devices in all. */
  const account = async (prefix: string, devices: number) => {
    const created = await TestAccount.register(suite.server.url, name(prefix));
    while (created.devices.length < devices) await created.link(created.devices[0]!);
    return created;
  };

  /** Connects `device`, takes everything stored for it, and checks nothing else comes before `drained`. */
  const inboxOf = async (device: TestDevice, count: number): Promise<Envelope[]> => {
    const inbox = await device.connect(suite.server.wsUrl);
    const envelopes = await inbox.envelopes(count);
    await inbox.next('drained');
    expect(inbox.pending.filter((f) => f.kind === 'envelope')).toHaveLength(0);
    await inbox.close();
    return envelopes;
  };

  it.skipIf(!available)('delivers the one body to every device of every recipient, with the same type, source, source device and timestamp', async () => {
    const alice = await account('alice', 2);
    const bob = await account('bob', 3);
    const carol = await account('carol', 2);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const body = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 256);

    // Interleaved with sends on the same connection: answers match their request ids, and mailboxes keep the order sent.
    const first = sender.submit([to(bob, () => text('before'))]);
    const multicast = sender.submitMulticast(TYPE, body, [everyDevice(alice, alice.devices[0]), everyDevice(bob), everyDevice(carol)]);
    const last = sender.submit([to(bob, () => text('after'))]);
    const [before, answer, after] = await Promise.all([sender.answer(first), sender.answer(multicast), sender.answer(last)]);
    expect([before.kind, answer.kind, after.kind]).toEqual(['sent', 'sent', 'sent']);
    if (answer.kind !== 'sent') throw new Error('unreachable');

    for (const device of bob.devices) {
      const [b, m, a] = await inboxOf(device, 3);
      expect([read(b!.body), read(a!.body)]).toEqual(['before', 'after']);
      expect(m).toMatchObject({ source: alice.username, sourceDevice: 1, type: TYPE, body, timestamp: answer.timestamp });
      expect(b!.id < m!.id && m!.id < a!.id).toBe(true);
    }
    for (const device of [alice.devices[1]!, ...carol.devices]) {
      const [m] = await inboxOf(device, 1);
      expect(m).toMatchObject({ source: alice.username, sourceDevice: 1, type: TYPE, body, timestamp: answer.timestamp });
    }
    // The sending device gets nothing of its own multicast.
    await inboxOf(alice.devices[0]!, 0);
    await sender.close();
  });

  it.skipIf(!available)('pushes a multicast live to connected devices', async () => {
    const alice = await account('alice', 1);
    const bob = await account('bob', 2);
    const inboxes = await Promise.all(bob.devices.map((d) => d.connect(suite.server.wsUrl)));
    await Promise.all(inboxes.map((i) => i.next('drained')));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    expect((await sender.multicast(TYPE, text('live'), [everyDevice(bob)])).kind).toBe('sent');
    for (const inbox of inboxes) {
      const [envelope] = await inbox.envelopes(1);
      expect(read(envelope!.body)).toBe('live');
      inbox.ack([envelope!.id]);
    }
    await Promise.all([...inboxes, sender].map((c) => c.close()));
  });

  it.skipIf(!available)('refuses a wrong device set with the exact missing, extra and stale lists, and stores nothing for anyone', async () => {
    const alice = await account('alice', 2);
    const bob = await account('bob', 2);
    const carol = await account('carol', 2);
    const dave = await account('dave', 1);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const [bob1, bob2] = bob.devices;
    const [carol1, carol2] = carol.devices;

    const refused = await sender.multicast(TYPE, text('x'), [
      everyDevice(dave), // right: but nothing is stored for dave either
      everyDevice(alice), // names the sending device, which is extra
      { username: bob.username, devices: [{ deviceId: bob1!.deviceId, registrationId: bob1!.registrationId }] }, // misses bob's second device
      {
        username: carol.username,
        devices: [
          { deviceId: carol1!.deviceId, registrationId: carol1!.registrationId },
          { deviceId: carol2!.deviceId, registrationId: (carol2!.registrationId % limits.MAX_REGISTRATION_ID) + 1 }, // stale
          { deviceId: 9, registrationId: 1 }, // extra
        ],
      },
    ]);
    expect(refused).toEqual({
      kind: 'refused',
      requestId: expect.any(Number) as number,
      code: 'DEVICE_MISMATCH',
      message: expect.any(String) as string,
      mismatches: [
        { username: alice.username, missing: [], extra: [1], stale: [] },
        { username: bob.username, missing: [bob2!.deviceId], extra: [], stale: [] },
        { username: carol.username, missing: [], extra: [9], stale: [carol2!.deviceId] },
      ],
    });
    // Naming only the sending device of one's own account: it is extra, and the other device is missing.
    const own = await sender.multicast(TYPE, text('y'), [everyDevice(dave), everyDevice(alice, alice.devices[1])]);
    expect(own).toMatchObject({ kind: 'refused', code: 'DEVICE_MISMATCH', mismatches: [{ username: alice.username, missing: [2], extra: [1], stale: [] }] });
    // Right without the wrong ones.
    expect((await sender.multicast(TYPE, text('x'), [everyDevice(dave), everyDevice(alice, alice.devices[0])])).kind).toBe('sent');

    // Nothing of the refused multicasts was stored for anyone: dave and alice's other device got only the one that was sent.
    for (const device of [...bob.devices, ...carol.devices]) await inboxOf(device, 0);
    for (const device of [dave.devices[0]!, alice.devices[1]!]) expect((await inboxOf(device, 1)).map((e) => read(e.body))).toEqual(['x']);
    await sender.close();
  });

  it.skipIf(!available)('refuses a multicast naming an unknown account, and stores nothing for the known ones', async () => {
    const alice = await account('alice', 1);
    const bob = await account('bob', 2);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const answer = await sender.multicast(TYPE, text('x'), [everyDevice(bob), { username: name('nobody'), devices: [{ deviceId: 1, registrationId: 1 }] }]);
    expect(answer).toMatchObject({ kind: 'refused', code: 'UNKNOWN_RECIPIENT', mismatches: [] });
    for (const device of bob.devices) await inboxOf(device, 0);
    await sender.close();
  });

  it.skipIf(!available)('refuses a body over the size limit, storing nothing, and takes one at the limit', async () => {
    const alice = await account('alice', 1);
    const bob = await account('bob', 2);
    const carol = await account('carol', 1);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const recipients = [everyDevice(bob), everyDevice(carol)];
    expect(await sender.multicast(TYPE, new Uint8Array(MAX_ENVELOPE_BYTES + 1), recipients)).toMatchObject({ kind: 'refused', code: 'MESSAGE_TOO_LARGE' });
    expect((await sender.multicast(TYPE, new Uint8Array(MAX_ENVELOPE_BYTES).fill(5), recipients)).kind).toBe('sent');
    for (const device of [...bob.devices, ...carol.devices]) {
      const [envelope] = await inboxOf(device, 1);
      expect(envelope!.body).toEqual(new Uint8Array(MAX_ENVELOPE_BYTES).fill(5));
    }
    await sender.close();
  });

  it.skipIf(!available)(`refuses a multicast that would store over MAX_SEND_STORED_BYTES (${MAX_SEND_STORED_BYTES} bytes) across its mailboxes, storing nothing`, async () => {
    const copies = Math.floor(MAX_SEND_STORED_BYTES / MAX_ENVELOPE_BYTES) + 1; // full-size bodies: one copy too many
    const accounts = await Promise.all(Array.from({ length: Math.ceil(copies / MAX_DEVICES_PER_ACCOUNT) }, () => account('wide', MAX_DEVICES_PER_ACCOUNT)));
    const alice = await account('alice', 1);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const recipients = accounts.map((a) => everyDevice(a));
    expect(recipients.reduce((n, r) => n + r.devices.length, 0)).toBeGreaterThanOrEqual(copies);
    expect(await sender.multicast(TYPE, new Uint8Array(MAX_ENVELOPE_BYTES), recipients)).toMatchObject({ kind: 'refused', code: 'MESSAGE_TOO_LARGE' });
    // The same devices take a small body, and it is all they hold: nothing of the refused one was stored.
    expect((await sender.multicast(TYPE, text('small'), recipients)).kind).toBe('sent');
    for (const device of [accounts[0]!.devices[0]!, accounts.at(-1)!.devices.at(-1)!]) expect((await inboxOf(device, 1)).map((e) => read(e.body))).toEqual(['small']);
    await sender.close();
  });

  it.skipIf(!available)('a malformed multicast closes only its own connection (4400)', async () => {
    const alice = await account('alice', 1);
    const bob = await account('bob', 1);
    const bystander = await alice.devices[0]!.connect(suite.server.wsUrl);
    const malformed = [
      encodeClientFrame({ kind: 'multicast', requestId: 1, type: TYPE, body: text('x'), recipients: [] }),
      encodeClientFrame({ kind: 'multicast', requestId: 1, type: 0, body: text('x'), recipients: [everyDevice(alice)] }),
      encodeClientFrame({ kind: 'multicast', requestId: 1, type: TYPE, body: text('x'), recipients: [everyDevice(alice), everyDevice(alice)] }),
      encodeClientFrame({ kind: 'multicast', requestId: 1, type: TYPE, body: text('x'), recipients: [{ username: 'Alice_1', devices: [{ deviceId: 1, registrationId: 1 }] }] }),
    ];
    for (const frame of malformed) {
      const connection: Connection = await bob.devices[0]!.connect(suite.server.wsUrl);
      connection.socket.send(frame);
      expect((await connection.closed).code).toBe(CloseCode.MALFORMED_FRAME);
    }
    expect(CloseCode.MALFORMED_FRAME).toBe(4400);
    // The server and the other connection are unharmed.
    expect((await bystander.multicast(TYPE, text('still here'), [everyDevice(bob)])).kind).toBe('sent');
    expect(bystander.socket.readyState).toBe(WebSocket.OPEN);
    expect((await inboxOf(bob.devices[0]!, 1)).map((e) => read(e.body))).toEqual(['still here']);
    await bystander.close();
  });
});
