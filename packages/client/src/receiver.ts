/**
 * Receiving: each envelope is decrypted in a transaction that also holds the
 * message it carries and the envelope's id, committed together; only then is
 * the envelope acknowledged. A redelivered envelope is recognized by its id
 * and a resent message by its author and time, so nothing shows twice. A
 * failed decryption changes no session; the envelope is recorded as
 * undecryptable.
 *
 * Messages are accepted only from devices in the sender's verified device list.
 */
import { decryptMessage, isProtocolError, type Envelope, type MessageType } from '@parley/protocol';

import { decodeContent, type Content } from './content.js';
import { addNotice, contactWithDevices, noteIdentity, refreshContact } from './contacts.js';
import type { Context } from './context.js';
import { protocolStores } from './protocolStores.js';
import { Transaction } from './store/kv.js';
import { json, messageKey, parse, seenKey, type MessageStatus, type StoredMessage } from './store/records.js';

/** What receiving an envelope leads to, once it is stored and acknowledged. */
export interface Received {
  /** Events to emit. */
  readonly events: (() => void)[];
  /** A text that deserves a delivery receipt: its author and time. */
  readonly receipt?: { readonly to: string; readonly sentAt: number };
}

/** Statuses only move forward. */
const RANK: Record<MessageStatus, number> = { sending: 0, sent: 1, delivered: 2, read: 3, received: 0 };

/** Processes one envelope. Safe to call again for the same envelope (it is then a no-op). */
export async function receive(ctx: Context, envelope: Envelope): Promise<Received> {
  const events: (() => void)[] = [];
  const tx = new Transaction(ctx.store);
  if ((await tx.get('seen', seenKey(envelope.id))) !== undefined) return { events };
  const source = envelope.source;

  // Only a device the account's identity key has listed may speak for it.
  let contact = await contactWithDevices(ctx, tx, source, events);
  if (!contact.devices.some((d) => d.deviceId === envelope.sourceDevice)) contact = await refreshContact(ctx, tx, source, events);
  if (!contact.devices.some((d) => d.deviceId === envelope.sourceDevice)) {
    const notice = addNotice(ctx, tx, source, `A message claiming to come from ${source}'s device ${envelope.sourceDevice}, which ${source}'s signed device list does not hold, was dropped.`);
    return finish(ctx, tx, envelope, events, () => { ctx.events.emit('message', notice); });
  }

  let plaintext: Uint8Array;
  try {
    plaintext = await decrypt(ctx, tx, envelope, events);
  } catch (error) {
    if (!isProtocolError(error)) throw error;
    if (error.code === 'DUPLICATE_MESSAGE') return finish(ctx, new Transaction(ctx.store), envelope, events);
    // Nothing the failed decryption staged is kept: a fresh transaction records the failure.
    const failed = new Transaction(ctx.store);
    failed.put('undecryptable', `${source}.${envelope.sourceDevice}.${String(envelope.timestamp).padStart(16, '0')}`, json({ code: error.code, at: ctx.now() }));
    const notice = addNotice(ctx, failed, source, `A message from ${source} could not be decrypted (${error.code}).`);
    return finish(ctx, failed, envelope, events, () => {
      ctx.events.emit('message', notice);
      ctx.events.emit('warning', { message: `undecryptable message from ${source}.${envelope.sourceDevice}`, cause: error });
    });
  }

  let content: Content;
  try {
    content = decodeContent(plaintext);
  } catch {
    const notice = addNotice(ctx, tx, source, `A message from ${source} was not in a format this app can read.`);
    return finish(ctx, tx, envelope, events, () => { ctx.events.emit('message', notice); });
  }
  const receipt = await apply(ctx, tx, envelope, content, events);
  return { ...(await finish(ctx, tx, envelope, events)), ...(receipt === undefined ? {} : { receipt }) };
}

async function decrypt(ctx: Context, tx: Transaction, envelope: Envelope, events: (() => void)[]): Promise<Uint8Array> {
  const stores = protocolStores(tx, ctx.local.identity, ctx.local.registrationId);
  const address = { name: envelope.source, deviceId: envelope.sourceDevice };
  const message = { type: envelope.type as MessageType, body: envelope.body }; // an unknown type fails to decrypt
  try {
    return await decryptMessage(ctx.provider, stores, address, message);
  } catch (error) {
    // A new session under a new identity key: record the change (with its notice), then accept the message.
    if (!isProtocolError(error, 'UNTRUSTED_IDENTITY') || error.details.identityKey === undefined) throw error;
    const noted = await noteIdentity(ctx, tx, envelope.source, error.details.identityKey);
    await refreshContact(ctx, tx, envelope.source, events);
    if (noted.changed) {
      const { notice, wasVerified } = noted;
      events.push(() => {
        ctx.events.emit('message', notice);
        ctx.events.emit('identityChange', { username: envelope.source, wasVerified });
      });
    }
    return decryptMessage(ctx.provider, stores, address, message);
  }
}

/** Stores what a content means. Returns the receipt a text deserves. */
async function apply(ctx: Context, tx: Transaction, envelope: Envelope, content: Content, events: (() => void)[]): Promise<Received['receipt']> {
  const self = ctx.local.username;
  const source = envelope.source;
  const store = async (message: StoredMessage) => {
    const key = messageKey(message);
    if ((await tx.get('message', key)) !== undefined) return; // a resend of a message already shown
    tx.put('message', key, json(message));
    events.push(() => { ctx.events.emit('message', message); });
  };
  const base = { authorDevice: envelope.sourceDevice, sentAt: content.sentAt, storedAt: ctx.now() };
  switch (content.kind) {
    case 'text':
      await store({ ...base, conversation: source, direction: source === self ? 'outgoing' : 'incoming', author: source, kind: 'text', body: content.body, status: 'received' });
      return source === self ? undefined : { to: source, sentAt: content.sentAt };
    case 'sync':
      // What another device of this account sent: only this account's own devices may say so.
      if (source !== self) return undefined;
      await store({ ...base, sentAt: content.message.sentAt, conversation: content.destination, direction: 'outgoing', author: self, kind: 'text', body: content.message.body, status: 'sent' });
      return undefined;
    case 'receipt': {
      const status: MessageStatus = content.receipt === 'read' ? 'read' : 'delivered';
      for (const sentAt of content.messages) {
        for (const [key, bytes] of await tx.list('message', `${source}/${String(sentAt).padStart(16, '0')}.${self}.`)) {
          const message = parse<StoredMessage>(bytes);
          if (RANK[status] <= RANK[message.status]) continue;
          const updated = { ...message, status };
          tx.put('message', key, json(updated));
          events.push(() => { ctx.events.emit('status', updated); });
        }
      }
      return undefined;
    }
    case 'typing':
      events.push(() => { ctx.events.emit('typing', { from: source, typing: content.typing === 'started' }); });
      return undefined;
    case 'decryption-error':
      return undefined;
    case 'unsupported':
      await store({ ...base, conversation: source, direction: 'incoming', author: source, kind: 'unsupported', body: `This message needs a newer version of Parley (content version ${content.version}).`, status: 'received' });
      return undefined;
  }
}

async function finish(ctx: Context, tx: Transaction, envelope: Envelope, events: (() => void)[], emit?: () => void): Promise<Received> {
  tx.put('seen', seenKey(envelope.id), new Uint8Array(0));
  await tx.commit();
  if (emit !== undefined) events.push(emit);
  return { events };
}
