/**
 * Sending and delivery against a real server process, on each engine:
 * device-set checks, mailbox isolation, order, at-least-once delivery and the
 * limits that refuse a send instead of dropping it.
 */
import { describe, expect, it } from 'vitest';

import { MAX_ENVELOPE_BYTES, MAX_INFLIGHT_BYTES, MAX_INFLIGHT_ENVELOPES } from '../limits.js';
import { engineCases, useServer } from '../../../../testing/server.js';
import { Connection, TestAccount, to } from '../../../../testing/device.js';

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);

describe.each(engineCases)('delivery on $title', (engineCase) => {
  const { available } = engineCase;
  const suite = useServer(engineCase);
  let counter = 0;
  const name = (prefix: string) => `${prefix}_${++counter}`;

  it.skipIf(!available)('delivers to every device of the recipient, in order, and deletes only after the ack', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const bob2 = await bob.link(bob.devices[0]!);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);

    for (let i = 0; i < 20; i++) {
      const answer = await sender.request([to(bob, (d) => text(`m${i} for ${d}`))]);
      expect(answer.kind).toBe('sent');
    }

    for (const device of [bob.devices[0]!, bob2]) {
      const inbox = await device.connect(suite.server.wsUrl);
      const envelopes = await inbox.envelopes(20);
      expect(envelopes.map((e) => read(e.body))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i} for ${device.deviceId}`));
      expect(envelopes.every((e) => e.source === alice.username && e.sourceDevice === 1 && e.type === 2)).toBe(true);
      await inbox.next('drained');
      // Not acknowledged: a new connection gets all of them again (at least once).
      await inbox.close();
      const again = await device.connect(suite.server.wsUrl);
      const redelivered = await again.envelopes(20);
      expect(redelivered.map((e) => e.id)).toEqual(envelopes.map((e) => e.id));
      again.ack(redelivered.slice(0, 15).map((e) => e.id));
      await again.next('drained');
      await again.close();
      const third = await device.connect(suite.server.wsUrl);
      const rest = await third.envelopes(5);
      expect(rest.map((e) => e.id)).toEqual(envelopes.slice(15).map((e) => e.id));
      third.ack(rest.map((e) => e.id));
      await third.next('drained');
      await third.close();
    }
    await sender.close();
  });

  it.skipIf(!available)('pushes live envelopes to a connected device as soon as they are stored', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    await inbox.next('drained');
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const ids = Array.from({ length: 50 }, (_, i) => sender.submit([to(bob, () => text(`live ${i}`))]));
    const answers = await Promise.all(ids.map((id) => sender.answer(id)));
    expect(answers.every((a) => a.kind === 'sent')).toBe(true);
    const envelopes = await inbox.envelopes(50);
    expect(envelopes.map((e) => read(e.body))).toEqual(Array.from({ length: 50 }, (_, i) => `live ${i}`));
    expect(envelopes.map((e) => e.id)).toEqual([...envelopes.map((e) => e.id)].sort((a, b) => a - b));
    inbox.ack(envelopes.map((e) => e.id));
    await Promise.all([inbox.close(), sender.close()]);
  });

  it.skipIf(!available)('refuses a send that misses, invents or has a stale device, with the exact lists', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const bob2 = await bob.link(bob.devices[0]!);
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const message = (deviceId: number, registrationId: number) => ({ deviceId, registrationId, type: 2, body: text('x') });

    const missing = await sender.request([{ username: bob.username, messages: [message(1, bob.devices[0]!.registrationId)] }]);
    expect(missing).toMatchObject({ kind: 'refused', code: 'DEVICE_MISMATCH', mismatches: [{ username: bob.username, missing: [2], extra: [], stale: [] }] });

    const wrong = await sender.request([
      {
        username: bob.username,
        messages: [message(1, bob.devices[0]!.registrationId), message(2, (bob2.registrationId % 16000) + 1), message(7, 1)],
      },
    ]);
    expect(wrong).toMatchObject({ kind: 'refused', code: 'DEVICE_MISMATCH', mismatches: [{ missing: [], extra: [7], stale: [2] }] });

    // Nothing of a refused send was stored: Bob's devices get nothing.
    const inbox = await bob2.connect(suite.server.wsUrl);
    await inbox.next('drained');
    expect(inbox.pending.filter((f) => f.kind === 'envelope')).toHaveLength(0);

    // A send to one's own account leaves out the sending device, and naming it is an error.
    const alice2 = await alice.link(alice.devices[0]!);
    const self = await sender.request([to(alice, () => text('note to self'))]);
    expect(self).toMatchObject({ kind: 'refused', mismatches: [{ username: alice.username, extra: [1] }] });
    expect((await sender.request([to(alice, () => text('note to self'), alice.devices[0])])).kind).toBe('sent');
    const mine = await alice2.connect(suite.server.wsUrl);
    expect(read((await mine.envelopes(1))[0]!.body)).toBe('note to self');

    const unknown = await sender.request([{ username: 'nobody_here', messages: [message(1, 1)] }]);
    expect(unknown).toMatchObject({ kind: 'refused', code: 'UNKNOWN_RECIPIENT' });
    await Promise.all([sender.close(), inbox.close(), mine.close()]);
  });

  it.skipIf(!available)('stores a multi-destination send whole or not at all', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const carol = await TestAccount.register(suite.server.url, name('carol'));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const refused = await sender.request([to(bob, () => text('both')), { username: carol.username, messages: [{ deviceId: 9, registrationId: 1, type: 2, body: text('x') }] }]);
    expect(refused).toMatchObject({ kind: 'refused', mismatches: [{ username: carol.username, missing: [1], extra: [9] }] });
    expect((await sender.request([to(bob, () => text('both')), to(carol, () => text('both'))])).kind).toBe('sent');
    for (const account of [bob, carol]) {
      const inbox = await account.devices[0]!.connect(suite.server.wsUrl);
      const envelopes = await inbox.envelopes(1);
      expect(read(envelopes[0]!.body)).toBe('both');
      await inbox.next('drained');
      expect(inbox.pending.filter((f) => f.kind === 'envelope')).toHaveLength(0);
      await inbox.close();
    }
    await sender.close();
  });

  it.skipIf(!available)('never lets a device read or acknowledge another mailbox, whatever ids it sends', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const mallory = await TestAccount.register(suite.server.url, name('mallory'));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    for (let i = 0; i < 5; i++) expect((await sender.request([to(bob, () => text(`secret ${i}`))])).kind).toBe('sent');

    // Mallory learns Bob's envelope ids (say, by guessing: they are counters) and acks them all, and many more.
    const bobInbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    const ids = (await bobInbox.envelopes(5)).map((e) => e.id);
    await bobInbox.close();
    const malloryInbox = await mallory.devices[0]!.connect(suite.server.wsUrl);
    await malloryInbox.next('drained');
    const guesses = Array.from({ length: 1000 }, (_, i) => Math.max(1, ids[0]! - 500) + i);
    malloryInbox.ack(guesses);
    malloryInbox.ack(ids);
    // Mallory receives nothing of Bob's.
    expect(malloryInbox.pending.filter((f) => f.kind === 'envelope')).toHaveLength(0);
    // A send through Mallory's connection makes the acks committed before Bob reconnects.
    expect((await malloryInbox.request([to(alice, () => text('hi'))])).kind).toBe('sent');
    await malloryInbox.close();

    const again = await bob.devices[0]!.connect(suite.server.wsUrl);
    const envelopes = await again.envelopes(5);
    expect(envelopes.map((e) => e.id)).toEqual(ids);
    expect(envelopes.map((e) => read(e.body))).toEqual(Array.from({ length: 5 }, (_, i) => `secret ${i}`));
    await Promise.all([again.close(), sender.close()]);
  });

  it.skipIf(!available)('refuses an envelope over the size limit explicitly, and stores nothing of it', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const answer = await sender.request([to(bob, () => new Uint8Array(MAX_ENVELOPE_BYTES + 1))]);
    expect(answer).toMatchObject({ kind: 'refused', code: 'MESSAGE_TOO_LARGE' });
    expect((await sender.request([to(bob, () => new Uint8Array(MAX_ENVELOPE_BYTES))])).kind).toBe('sent');
    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    expect((await inbox.envelopes(1))[0]!.body.length).toBe(MAX_ENVELOPE_BYTES);
    await inbox.next('drained');
    expect(inbox.pending.filter((f) => f.kind === 'envelope')).toHaveLength(0);
    await Promise.all([inbox.close(), sender.close()]);
  });

  it.skipIf(!available)('a slow reader holds at most a window of unacknowledged envelopes, and gets more as it acks', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const total = MAX_INFLIGHT_ENVELOPES + 50;
    const answers = await Promise.all(Array.from({ length: total }, (_, i) => sender.answer(sender.submit([to(bob, () => text(`${i}`))]))));
    expect(answers.every((a) => a.kind === 'sent')).toBe(true);

    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    const window = await inbox.envelopes(MAX_INFLIGHT_ENVELOPES);
    await expect(inbox.next('envelope', undefined, 300)).rejects.toThrow(/no envelope frame/);
    inbox.ack(window.slice(0, 10).map((e) => e.id));
    const more = await inbox.envelopes(10);
    await expect(inbox.next('envelope', undefined, 300)).rejects.toThrow(/no envelope frame/);
    expect([...window, ...more].map((e) => read(e.body))).toEqual(Array.from({ length: MAX_INFLIGHT_ENVELOPES + 10 }, (_, i) => `${i}`));
    // Live envelopes wait for room too, and then come in order after the stored ones.
    expect((await sender.request([to(bob, () => text('live'))])).kind).toBe('sent');
    inbox.ack([...window.slice(10), ...more].map((e) => e.id));
    const rest = await inbox.envelopes(total - MAX_INFLIGHT_ENVELOPES - 10 + 1);
    expect(rest.map((e) => read(e.body))).toEqual([...Array.from({ length: total - MAX_INFLIGHT_ENVELOPES - 10 }, (_, i) => `${i + MAX_INFLIGHT_ENVELOPES + 10}`), 'live']);
    await Promise.all([inbox.close(), sender.close()]);
  });

  it.skipIf(!available)('large envelopes fill the window by bytes, and the rest follow in order as acks free it', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const sender = await alice.devices[0]!.connect(suite.server.wsUrl);
    const perWindow = MAX_INFLIGHT_BYTES / MAX_ENVELOPE_BYTES;
    const big = (i: number) => new Uint8Array(MAX_ENVELOPE_BYTES).fill(i);
    for (let i = 0; i < perWindow + 1; i++) expect((await sender.request([to(bob, () => big(i))])).kind).toBe('sent');

    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    const window = await inbox.envelopes(perWindow);
    await expect(inbox.next('envelope', undefined, 300)).rejects.toThrow(/no envelope frame/);
    expect(inbox.pending.some((f) => f.kind === 'drained')).toBe(false); // not drained: one is still waiting
    // A live envelope must not overtake the stored one that is still waiting.
    expect((await sender.request([to(bob, () => text('live'))])).kind).toBe('sent');
    inbox.ack([window[0]!.id, window[1]!.id]);
    const [last, live] = await inbox.envelopes(2);
    expect(last!.body[0]).toBe(perWindow);
    expect(read(live!.body)).toBe('live');
    await Promise.all([inbox.close(), sender.close()]);
  });

  it.skipIf(!available)('frames sent right behind the token, before ready, are handled in order once it checks out', async () => {
    const alice = await TestAccount.register(suite.server.url, name('alice'));
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const sender = await Connection.open(suite.server.wsUrl);
    sender.send({ kind: 'auth', token: new Uint8Array(Buffer.from(await alice.devices[0]!.login(), 'base64url')) });
    const ids = Array.from({ length: 5 }, (_, i) => sender.submit([to(bob, () => text(`early ${i}`))]));
    await sender.next('ready');
    expect((await Promise.all(ids.map((id) => sender.answer(id)))).map((a) => a.kind)).toEqual(Array(5).fill('sent'));
    const inbox = await bob.devices[0]!.connect(suite.server.wsUrl);
    expect((await inbox.envelopes(5)).map((e) => read(e.body))).toEqual(Array.from({ length: 5 }, (_, i) => `early ${i}`));
    await Promise.all([inbox.close(), sender.close()]);
  });

  it.skipIf(!available)('a newer connection of the same device replaces the older one', async () => {
    const bob = await TestAccount.register(suite.server.url, name('bob'));
    const first = await bob.devices[0]!.connect(suite.server.wsUrl);
    const second = await bob.devices[0]!.connect(suite.server.wsUrl);
    expect(await first.closed).toMatchObject({ code: 4409 });
    await second.next('drained');
    await second.close();
  });
});

