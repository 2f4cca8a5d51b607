/**
 * Receiving: each envelope is decrypted in a transaction that also holds the
 * message it carries and the envelope's id, committed together; only then is
 * the envelope acknowledged. A redelivered envelope is recognized by its id
 * and a resent message by its author and time, so nothing shows twice.
 *
 * A failed decryption changes no session. The envelope is recorded as
 * undecryptable and its sender is asked, with a decryption-error message in a
 * fresh session, to resend it (recovery.ts); the record goes once the resent
 * copy arrives. A duplicate counter under a new envelope id is a failure too:
 * the sender lost its state (or the server replays), and only a resend in a
 * fresh session can help.
 *
 * Messages are accepted only from devices in the sender's verified device list.
 */
import { decryptMessage, isProtocolError, SENDER_KEY_MESSAGE_TYPE, type Envelope, type MessageType } from '@parley/protocol';

import { decodeContent, type Content } from './content.js';
import { addNotice, contactWithDevices, fromTheFuture, noteIdentity, refreshContact } from './contacts.js';
import type { Context } from './context.js';
import { receiveGroupChanges, receiveResync } from './groups/changes.js';
import { forgetKeyHolder, receiveGroupMessage, receiveSenderKey, refuseGroupTextOneToOne } from './groups/messages.js';
import { loadContact, protocolStores } from './protocolStores.js';
import { Transaction } from './store/kv.js';
import { json, messageKey, parse, seenKey, type Contact, type MessageStatus, type StoredMessage } from './store/records.js';

/** What receiving an envelope leads to, once it is stored and acknowledged. */
export interface Received {
  /** Events to emit. */
  readonly events: (() => void)[];
  /** A text that deserves a delivery receipt: its author and time. */
  readonly receipt?: { readonly to: string; readonly sentAt: number };
  /** A contact asked for a resend (see recovery.ts). */
  readonly resendRequested?: boolean;
  /** Group changes to ask for, or to send a member that asked (groups.ts `flushResyncs`). */
  readonly resync?: boolean;
  /** An envelope that could not be decrypted: ask its sender to resend it. */
  readonly failed?: { readonly from: string; readonly device: number; readonly failedAt: number };
}

/** The key of an undecryptable envelope's record: sender, device, and the server's timestamp. */
export const undecryptableKey = (from: string, device: number, failedAt: number) => `${from}.${device}.${String(failedAt).padStart(16, '0')}`;


/** Statuses only move forward. */
const RANK: Record<MessageStatus, number> = { sending: 0, failed: 0, sent: 1, delivered: 2, read: 3, received: 0 };

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

  if (envelope.type === SENDER_KEY_MESSAGE_TYPE) {
    const outcome = await receiveGroupMessage(ctx, tx, envelope, contact, events);
    if (outcome.kind !== 'undecryptable') return finish(ctx, tx, envelope, events);
    // The request tells the sender this device lacks its key, which it sends again with its next group message;
    // the message itself stays lost (a sender key cannot re-encrypt one old message).
    const failed = new Transaction(ctx.store);
    const code = isProtocolError(outcome.error) ? outcome.error.code : 'NO_SENDER_KEY';
    failed.put('undecryptable', undecryptableKey(source, envelope.sourceDevice, envelope.timestamp), json({ code, at: ctx.now(), group: true }));
    const result = await finish(ctx, failed, envelope, [], () => {
      ctx.events.emit('warning', { message: `a group message from ${source}.${envelope.sourceDevice} could not be decrypted (${code}); asking for the key again`, cause: outcome.error });
    });
    return { ...result, failed: { from: source, device: envelope.sourceDevice, failedAt: envelope.timestamp } };
  }

  let plaintext: Uint8Array;
  const staged: (() => void)[] = []; // an identity change is news only if the message it came with decrypts
  try {
    plaintext = await decrypt(ctx, tx, envelope, staged);
    events.push(...staged);
  } catch (error) {
    if (!isProtocolError(error)) throw error;
    // A counter already used (DUPLICATE_MESSAGE) fails like the rest: it may be a sender restored from a snapshot,
    // reusing a message key for a new message that only a resend brings; a server's replay comes back shown once.
    // Nothing the failed decryption staged is kept: a fresh transaction records the failure.
    const failed = new Transaction(ctx.store);
    failed.put('undecryptable', undecryptableKey(source, envelope.sourceDevice, envelope.timestamp), json({ code: error.code, at: ctx.now() }));
    const result = await finish(ctx, failed, envelope, [], () => {
      ctx.events.emit('warning', { message: `a message from ${source}.${envelope.sourceDevice} could not be decrypted (${error.code}); asking for it again`, cause: error });
    });
    return { ...result, failed: { from: source, device: envelope.sourceDevice, failedAt: envelope.timestamp } };
  }

  let content: Content;
  try {
    content = decodeContent(plaintext);
  } catch {
    const notice = addNotice(ctx, tx, source, `A message from ${source} was not in a format this app can read.`);
    return finish(ctx, tx, envelope, events, () => { ctx.events.emit('message', notice); });
  }
  // The contact as the session now has it (a decryption may have recorded a new identity key).
  const outcome = await apply(ctx, tx, envelope, (await loadContact(tx, source)) ?? contact, content, events);
  const receipt = outcome === 'resync' ? undefined : outcome;
  return {
    ...(await finish(ctx, tx, envelope, events)),
    ...(receipt === undefined ? {} : { receipt }),
    ...(content.kind === 'decryption-error' ? { resendRequested: true } : {}),
    ...(outcome === 'resync' ? { resync: true } : {}),
  };
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
    await noteIdentity(ctx, tx, envelope.source, error.details.identityKey, events);
    await refreshContact(ctx, tx, envelope.source, events);
    return decryptMessage(ctx.provider, stores, address, message);
  }
}

/** Stores what a content means. Returns the receipt a text deserves. */
async function apply(ctx: Context, tx: Transaction, envelope: Envelope, contact: Contact, content: Content, events: (() => void)[]): Promise<Received['receipt'] | 'resync'> {
  const self = ctx.local.username;
  const source = envelope.source;
  const store = async (message: StoredMessage) => {
    const key = messageKey(message);
    if ((await tx.get('message', key)) !== undefined) return; // a resend of a message already shown
    tx.put('message', key, json(message));
    events.push(() => { ctx.events.emit('message', message); });
  };
  const base = { authorDevice: envelope.sourceDevice, sentAt: content.sentAt, storedAt: ctx.now() };
  const dated = content.kind === 'sync' ? content.message.sentAt : content.sentAt;
  if ((content.kind === 'text' || content.kind === 'sync') && fromTheFuture(ctx, tx, source, source, dated, events)) return undefined;
  switch (content.kind) {
    case 'text':
      if (content.resentFor !== undefined) tx.delete('undecryptable', undecryptableKey(source, envelope.sourceDevice, content.resentFor));
      await store({ ...base, conversation: source, direction: source === self ? 'outgoing' : 'incoming', author: source, kind: 'text', body: content.body, status: 'received' });
      return source === self ? undefined : { to: source, sentAt: content.sentAt };
    case 'sync':
      // What another device of this account sent: only this account's own devices may say so.
      if (source !== self) return undefined;
      if (content.message.resentFor !== undefined) tx.delete('undecryptable', undecryptableKey(source, envelope.sourceDevice, content.message.resentFor));
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
      // Answered outside the transaction (recovery.ts): the resend needs the network.
      if (content.sourceDevice === ctx.local.deviceId) {
        tx.put('resendRequest', `${String(content.failedAt).padStart(16, '0')}.${source}`, new Uint8Array(0));
        // The device lost its session with this one, and with it any sender key sent over it: send them again.
        await forgetKeyHolder(tx, source, envelope.sourceDevice);
      }
      return undefined;
    case 'group-change':
      return (await receiveGroupChanges(ctx, tx, envelope, content.changes, events)) ? 'resync' : undefined;
    case 'group-resync':
      return (await receiveResync(ctx, tx, envelope, content, events)) ? 'resync' : undefined;
    case 'sender-key':
      await receiveSenderKey(ctx, tx, envelope, contact, content, events);
      return undefined;
    case 'group-text':
      refuseGroupTextOneToOne(ctx, tx, envelope, content, events);
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
