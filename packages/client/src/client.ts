/**
 * `ParleyClient`: one device of one account, the object an app holds. It
 * creates or opens the device's profile, keeps a connection to the server,
 * processes the mailbox in order, and offers what a messenger UI needs:
 * conversations, sending, receipts and typing, safety numbers and
 * verification, devices, and typed events to bind to.
 *
 * It runs unchanged in Node and browsers; the platform comes in as a
 * `Platform` (node/index.ts builds the Node one).
 */
import type { CryptoProvider } from '@parley/crypto';
import { createFingerprint, foldUsername, utf8, type Envelope } from '@parley/protocol';

import { createAccount, refillPreKeys, rotateSignedPreKeys } from './account.js';
import { ServerApi } from './api.js';
import { fromBase64 } from './base64.js';
import { encodeContent, MAX_RECEIPT_IDS, type Content } from './content.js';
import { addNotice, refreshContact } from './contacts.js';
import type { ClientEvents, Context } from './context.js';
import { ClientError, isClientError } from './errors.js';
import { Events } from './events.js';
import { errorCode, logClientEvents, Logger, type LogSink } from './log.js';
import { changeGroup, createGroup, flushResyncs } from './groups/changes.js';
import { getGroup, groupMembers, listGroups, type GroupEdit, type GroupInfo, type GroupMemberDetails } from './groups/groups.js';
import { sendGroupText } from './groups/messages.js';
import { groupConversation } from './groups/state.js';
import { approveJoin, joinAccount, offerLink, removeDevice, requestJoin, type HistoryWindow, type LinkRequest, type PendingLink } from './devices.js';
import { loadContact, saveContact } from './protocolStores.js';
import { receive } from './receiver.js';
import { answerResendRequests, countUndecryptable, pruneSeen, pruneSent, recordSent, requestResend, UNDECRYPTABLE_GRACE_MS } from './recovery.js';
import { send } from './sender.js';
import { Transaction, type KeyValueStore } from './store/kv.js';
import { decodeLocalDevice, json, messageKey, outgoingText, parse, seenKey, type Contact, type LocalDevice, type StoredMessage } from './store/records.js';
import { DEFAULT_BACKOFF, Transport, type BackoffOptions, type ConnectionState, type WebSocketFactory } from './transport.js';

/** What differs between Node and browsers. */
export interface Platform {
  readonly provider: CryptoProvider;
  readonly store: KeyValueStore;
  readonly webSocket: WebSocketFactory;
  /** The clock; injectable for tests. */
  readonly now?: () => number;
  readonly backoff?: BackoffOptions;
  /**
   * Where the SDK's debug log goes; none if absent. Lines carry event names
   * and scalar fields only, never plaintexts, keys, tokens or codes (log.ts).
   */
  readonly log?: LogSink;
}

/** A contact's safety number, to compare in person or by scanning. */
export interface SafetyNumber {
  /** 60 digits, the same on both sides; shown in groups of five. */
  readonly digits: string;
  /** The bytes of the QR code this side shows. */
  readonly scannable: Uint8Array;
  readonly verified: boolean;
}

/** A username as the user typed it, in canonical form. @throws ClientError `INVALID_ARGUMENT` for one that cannot exist. */
function canonical(username: string): string {
  try {
    return foldUsername(username);
  } catch (error) {
    throw new ClientError('INVALID_ARGUMENT', `"${username}" is not a username: 3–32 letters, digits or _, starting with a letter`, { cause: error });
  }
}

/** The padded plaintext of a content. @throws ClientError `INVALID_ARGUMENT` for a content out of range (a text over 64 KiB, say). */
function encodable(content: Content): Uint8Array {
  try {
    return encodeContent(content);
  } catch (error) {
    throw new ClientError('INVALID_ARGUMENT', error instanceof Error ? error.message : 'a message out of range', { cause: error });
  }
}

/** `store`, refusing every use with ClientError `CLOSED` once `closed()` (rather than with the engine's own error). */
function usableUntil(store: KeyValueStore, closed: () => boolean): KeyValueStore {
  const open = () => {
    if (closed()) throw new ClientError('CLOSED', 'the client was closed');
  };
  return {
    async get(ns, key) {
      open();
      return store.get(ns, key);
    },
    async list(ns, prefix, options) {
      open();
      return store.list(ns, prefix, options);
    },
    async write(writes) {
      open();
      return store.write(writes);
    },
    close: () => store.close(),
  };
}

/**
 * Failures that processing an envelope again can never mend, so the envelope
 * is dropped (with a warning); any other (a network or server fault) leaves
 * it unacknowledged, to come again on a new connection.
 */
const PERMANENT_FAILURES: ReadonlySet<string> = new Set(['UNKNOWN_USER', 'INVALID_DEVICE_LIST']);

/**
 * An envelope whose processing fails this many times in a row, for a reason
 * other than the network, is poison: dropped with a notice, so that it cannot
 * hold up the rest of the mailbox forever (SECURITY-TESTS row 22).
 */
export const MAX_ENVELOPE_ATTEMPTS = 5;

/** The device an envelope came from, as the log names it: `username.deviceId` (the server knows both). */
const addressOf = (envelope: Envelope) => `${envelope.source}.${envelope.sourceDevice}`;

/** An incoming text the user has not read yet (notices are never counted). */
const isUnread = (m: StoredMessage) => m.direction === 'incoming' && m.kind === 'text' && m.status === 'received';

/** Conversations are listed newest first, at most this many messages each unless asked. */
const DEFAULT_HISTORY = 50;

/** Set by ParleyClient's static block: reaches a client's context (see `contextOf`). */
let internals: ((client: ParleyClient) => Context) | undefined;

/**
 * The context of a client, for tests that play a misbehaving member (one that
 * sends what the SDK itself never would). Not exported from the package.
 * @internal
 */
export function contextOf(client: ParleyClient): Context {
  return internals!(client);
}

export class ParleyClient {
  static {
    internals = (client) => client.#ctx;
  }

  readonly events = new Events<ClientEvents>();
  readonly #ctx: Context;
  readonly #webSocket: WebSocketFactory;
  #queue: Promise<unknown> = Promise.resolve();
  #inbox: Envelope[] = [];
  #processing = false;
  #drainedCount = 0;
  /** When each device's session was last restarted to recover (see recovery.ts). */
  readonly #sessionResets = new Map<string, number>();
  /** sentAt only increases on this device, so two messages never share one. */
  #lastSentAt = 0;
  /** Key upkeep runs one at a time. */
  #maintaining: Promise<void> = Promise.resolve();
  /** Group resync flushes run one at a time. */
  #resyncing: Promise<void> = Promise.resolve();
  /**
   * Processing failed and the inbox was dropped for a reconnect: envelopes
   * still arriving on the old connection are ignored, so that none is
   * processed ahead of the one that failed (the server sends them all again).
   */
  #replaying = false;
  /** Failed processing attempts of the envelope at the head of the inbox, by envelope id (network failures do not count). */
  readonly #attempts = new Map<number, number>();
  /** The mailbox was drained on the current connection: from now on envelopes arrive live. */
  #drained = false;
  #closed = false;
  /** The store is closed: anything still trying to use it gets CLOSED. */
  #storeClosed = false;

  private constructor(platform: Platform, api: ServerApi, local: LocalDevice) {
    const now = platform.now ?? Date.now;
    const log = new Logger(platform.log);
    this.#webSocket = platform.webSocket;
    const transport = new Transport(
      api,
      platform.webSocket,
      {
        envelope: (envelope) => {
          if (this.#replaying) return; // it comes again, in order, on the next connection
          this.#inbox.push(envelope);
          void this.#processInbox();
        },
        drained: () => {
          void this.#afterDrain();
        },
        state: (state, detail) => {
          // Whatever the change, the connection the inbox was dropped for is gone or replaced: what arrives now is in order again.
          this.#replaying = false;
          if (state !== 'online') this.#drained = false;
          this.events.emit('connection', { state, detail });
        },
      },
      platform.backoff ?? DEFAULT_BACKOFF,
      log,
    );
    this.#ctx = {
      provider: platform.provider,
      api,
      store: usableUntil(platform.store, () => this.#storeClosed),
      transport,
      events: this.events,
      now,
      log,
      local,
      exclusive: (task) => {
        const result = this.#queue.then(task, task);
        this.#queue = result.catch(() => undefined);
        return result;
      },
    };
    logClientEvents(this.events, log);
  }

  /**
   * Creates an account named `username` on the server at `serverUrl`, with
   * this device as its first, and stores it in the platform's store.
   * @throws ClientError `ACCOUNT_EXISTS` if the store holds an account already, `INVALID_ARGUMENT`, `SERVER` (USERNAME_TAKEN…), `NETWORK`.
   */
  static async create(platform: Platform, serverUrl: string, username: string): Promise<ParleyClient> {
    if ((await platform.store.get('local', 'device')) !== undefined) {
      throw new ClientError('ACCOUNT_EXISTS', 'this profile already holds an account');
    }
    const api = new ServerApi(serverUrl, platform.provider, platform.now);
    const local = await createAccount(platform.provider, api, platform.store, username, (platform.now ?? Date.now)());
    api.signInAs(local);
    const client = new ParleyClient(platform, api, local);
    await client.#maintainKeysOrWarn();
    return client;
  }

  /** Opens the account in the platform's store. @throws ClientError `NO_ACCOUNT`. */
  static async open(platform: Platform): Promise<ParleyClient> {
    const bytes = await platform.store.get('local', 'device');
    if (bytes === undefined) throw new ClientError('NO_ACCOUNT', 'this profile holds no account yet');
    const local = decodeLocalDevice(bytes);
    const api = new ServerApi(local.serverUrl, platform.provider, platform.now);
    api.signInAs(local);
    return new ParleyClient(platform, api, local);
  }

  /**
   * Links a new device to the account of the device that shows `code`: the
   * identity key, the account's device list, contacts with their trust and a
   * window of message history arrive end to end encrypted; this device then
   * signs itself into the device list and registers. Resolves with the new
   * device's client, its store filled.
   * @throws ClientError `INVALID_ARGUMENT` (not a link code; a join code is refused saying where it belongs), `ACCOUNT_EXISTS`, `NETWORK`, `BAD_RESPONSE`, `SERVER`.
   */
  static async link(platform: Platform, linkCode: string): Promise<ParleyClient> {
    if ((await platform.store.get('local', 'device')) !== undefined) {
      throw new ClientError('ACCOUNT_EXISTS', 'this profile already holds an account');
    }
    const { api, local } = await joinAccount(platform, linkCode);
    const client = new ParleyClient(platform, api, local);
    client.#ctx.log.info('link.completed', { role: 'new', deviceId: local.deviceId });
    await client.#maintainKeysOrWarn();
    return client;
  }

  /**
   * Asks to join an account as a new device, Signal's way round: opens a
   * linking channel on `serverUrl` and returns the join code to show (as text
   * or QR code) to a device already in the account, which approves it with
   * `approveLink`. `done` then resolves with this device's client, as `link`
   * would; show the user which account it joined.
   * @throws ClientError `ACCOUNT_EXISTS`, `NETWORK` if the relay cannot be reached; `done` rejects as `link` does.
   */
  static async requestLink(platform: Platform, serverUrl: string): Promise<LinkRequest> {
    if ((await platform.store.get('local', 'device')) !== undefined) {
      throw new ClientError('ACCOUNT_EXISTS', 'this profile already holds an account');
    }
    const { code, joined, cancel } = await requestJoin(platform, serverUrl);
    new Logger(platform.log).info('link.started', { role: 'new' });
    const done = joined.then(async ({ api, local }) => {
      const client = new ParleyClient(platform, api, local);
      client.#ctx.log.info('link.completed', { role: 'new', deviceId: local.deviceId });
      await client.#maintainKeysOrWarn();
      return client;
    });
    return { code, done, cancel };
  }

  /**
   * Approves a new device that shows a join code (`requestLink`): joins its
   * channel and gives it the account, as `startLink` does, with recent
   * history within `window`. Resolves once the new device has joined.
   * @throws ClientError `INVALID_ARGUMENT` (not a join code), `NETWORK`, `BAD_RESPONSE`, `INVALID_DEVICE_LIST`, `SERVER`.
   */
  async approveLink(code: string, window: HistoryWindow = {}): Promise<{ deviceId: number }> {
    const deviceId = await approveJoin(this.#ctx, this.#webSocket, code, window);
    this.#ctx.log.info('link.completed', { role: 'existing', deviceId });
    await this.devices(); // the new list, verified, and the `devices` event
    return { deviceId };
  }

  /**
   * Starts linking a new device to this account: returns the link code to
   * show it, and resolves `done` once the new device has joined (with recent
   * history, within `window`).
   * @throws ClientError `NETWORK` if the relay cannot be reached.
   */
  async startLink(window: HistoryWindow = {}): Promise<PendingLink> {
    const pending = await offerLink(this.#ctx, this.#webSocket, window, async () => {
      await this.devices(); // the new list, verified, and the `devices` event
    });
    this.#ctx.log.info('link.started', { role: 'existing' });
    void pending.done.then(({ deviceId }) => {
      this.#ctx.log.info('link.completed', { role: 'existing', deviceId });
    }, () => undefined); // a failed link is the caller's to handle, through `done`
    return pending;
  }

  /**
   * Removes a device from the account: this device signs the device list
   * without it, and the server deletes the device, its keys and its mailbox;
   * it receives nothing more. A device may unlink itself.
   * @throws ClientError `INVALID_ARGUMENT` for a device the account does not have, or its only device.
   */
  async unlinkDevice(deviceId: number): Promise<void> {
    await removeDevice(this.#ctx, deviceId);
    this.#ctx.log.info('device.unlinked', { deviceId });
    if (deviceId !== this.deviceId) await this.devices();
  }

  get username(): string {
    return this.#ctx.local.username;
  }

  get deviceId(): number {
    return this.#ctx.local.deviceId;
  }

  get serverUrl(): string {
    return this.#ctx.api.baseUrl;
  }

  get connectionState(): ConnectionState {
    return this.#ctx.transport.state;
  }

  /** Connects to the server (and stays connected, reconnecting as needed, until `close`). */
  connect(): void {
    if (this.#closed) throw new ClientError('CLOSED', 'the client was closed');
    this.#ctx.transport.start();
  }

  /** Resolves once connected and the mailbox is drained. */
  async sync(): Promise<number> {
    if (this.#drained) {
      await this.#idle();
      return 0;
    }
    const drained = new Promise<number>((resolve, reject) => {
      const offDrained = this.events.on('drained', ({ count }) => {
        offDrained();
        offClosed();
        resolve(count);
      });
      const offClosed = this.events.on('connection', ({ state, detail }) => {
        if (state !== 'closed') return;
        offDrained();
        offClosed();
        reject(new ClientError('CLOSED', `the connection closed for good: ${detail}`));
      });
    });
    this.connect();
    return drained;
  }

  /** Disconnects, waits for work in progress, and closes the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.transport.stop();
    await this.#maintaining;
    await this.#resyncing;
    await this.#queue;
    this.#storeClosed = true;
    await this.#ctx.store.close();
  }

  /**
   * Sends a text to `username`'s devices, and a transcript to this account's
   * other devices. Resolves with the stored message once the server has it;
   * if sending fails, the stored message ends `failed` and the error is thrown.
   * @throws ClientError `IDENTITY_CHANGED` (verify again first), `UNKNOWN_USER`, `SEND_REFUSED`, `INVALID_ARGUMENT`.
   */
  async sendText(username: string, text: string): Promise<StoredMessage> {
    if (text.length === 0) throw new ClientError('INVALID_ARGUMENT', 'a message needs some text');
    const to = canonical(username);
    const sentAt = (this.#lastSentAt = Math.max(this.#ctx.now(), this.#lastSentAt + 1));
    const content: Content = { kind: 'text', sentAt, body: text };
    const plaintext = encodable(content); // checked before anything is stored
    const local = this.#ctx.local;
    const message = outgoingText(local, to, text, sentAt);
    await this.#put(message);
    this.events.emit('message', message);
    const sync: Content = { kind: 'sync', sentAt, destination: to, message: content };
    const recipients = [{ username: to, plaintext }];
    if (to !== local.username) recipients.push({ username: local.username, plaintext: encodeContent(sync) });
    this.connect(); // sending needs the connection; it stays up until close()
    const storedAt = await send(this.#ctx, recipients).catch(async (error: unknown) => {
      await this.#advance(message, 'failed'); // not stuck at "sending": the app can say so and offer to send again
      throw error;
    });
    const tx = new Transaction(this.#ctx.store);
    recordSent(tx, storedAt, to, content);
    if (to !== local.username) recordSent(tx, storedAt, local.username, sync);
    await tx.commit();
    return this.#advance(message, 'sent');
  }

  /**
   * Creates a group with this account as its admin and `members` as plain
   * members, and tells every member's devices, end to end encrypted. The
   * server learns nothing of it.
   * @throws ClientError `INVALID_ARGUMENT` (a bad username or title, over 1,000 members), `UNKNOWN_USER`, and what sending throws.
   */
  async createGroup(title: string, members: readonly string[]): Promise<GroupInfo> {
    this.connect();
    return createGroup(this.#ctx, title, members.map(canonical));
  }

  /** Adds `username` to a group (admins only), with the identity key this device knows for them. They get current sender keys only: nothing sent before. */
  async addGroupMember(groupId: string, username: string): Promise<GroupInfo> {
    return this.#changeGroup(groupId, { kind: 'add', username: canonical(username) });
  }

  /** Removes `username` from a group (admins only). Every member's next message goes under a fresh sender key the removed member never gets. */
  async removeGroupMember(groupId: string, username: string): Promise<GroupInfo> {
    return this.#changeGroup(groupId, { kind: 'remove', username: canonical(username) });
  }

  /** Makes `username` an admin (admins only). */
  async promoteGroupMember(groupId: string, username: string): Promise<GroupInfo> {
    return this.#changeGroup(groupId, { kind: 'promote', username: canonical(username) });
  }

  /** Makes `username` a plain member (admins only; a group keeps at least one admin). */
  async demoteGroupMember(groupId: string, username: string): Promise<GroupInfo> {
    return this.#changeGroup(groupId, { kind: 'demote', username: canonical(username) });
  }

  /** Renames a group (admins only). */
  async renameGroup(groupId: string, title: string): Promise<GroupInfo> {
    return this.#changeGroup(groupId, { kind: 'title', title });
  }

  /** Leaves a group. The last admin must first make someone else admin. */
  async leaveGroup(groupId: string): Promise<GroupInfo> {
    return this.#changeGroup(groupId, { kind: 'leave' });
  }

  /**
   * Sends a text to every device of every member of a group, encrypted once
   * under this device's sender key. Resolves with the stored message once the
   * server has every copy.
   * @throws ClientError `UNKNOWN_GROUP`, `NOT_A_MEMBER`, `INVALID_DEVICE_LIST`, `SEND_REFUSED`, `INVALID_ARGUMENT`.
   */
  async sendGroupText(groupId: string, text: string): Promise<StoredMessage> {
    if (text.length === 0) throw new ClientError('INVALID_ARGUMENT', 'a message needs some text');
    const sentAt = (this.#lastSentAt = Math.max(this.#ctx.now(), this.#lastSentAt + 1));
    encodable({ kind: 'text', sentAt, body: text }); // checked before anything is stored
    this.connect();
    return sendGroupText(this.#ctx, groupId, text, sentAt);
  }

  /** Every group this device knows, including those this account left. */
  async groups(): Promise<GroupInfo[]> {
    return listGroups(this.#ctx);
  }

  /** One group. @throws ClientError `UNKNOWN_GROUP`. */
  async group(groupId: string): Promise<GroupInfo> {
    return getGroup(this.#ctx, groupId);
  }

  /** A group's members with their devices (fetched fresh, from device lists their keys signed) and verification state. */
  async groupMembers(groupId: string): Promise<GroupMemberDetails[]> {
    return groupMembers(this.#ctx, groupId);
  }

  /** The last `limit` messages of a group, oldest first. */
  async groupConversation(groupId: string, limit = DEFAULT_HISTORY): Promise<StoredMessage[]> {
    const entries = await this.#ctx.store.list('message', `${groupConversation(groupId)}/`, { limit, reverse: true });
    return entries.map(([, bytes]) => parse<StoredMessage>(bytes)).reverse();
  }

  /**
   * Marks a group's incoming texts read on this device, and returns how many
   * were unread. Groups have no read receipts yet: their authors are not
   * told, and this account's other devices keep their own counts.
   */
  async markGroupRead(groupId: string): Promise<number> {
    return this.#ctx.exclusive(async () => {
      const unread = (await this.#ctx.store.list('message', `${groupConversation(groupId)}/`)).map(([, bytes]) => parse<StoredMessage>(bytes)).filter(isUnread);
      if (unread.length > 0) await this.#ctx.store.write(unread.map((m) => ({ ns: 'message', key: messageKey(m), value: json({ ...m, status: 'read' }) })));
      return unread.length;
    });
  }

  async #changeGroup(groupId: string, edit: GroupEdit): Promise<GroupInfo> {
    this.connect();
    return changeGroup(this.#ctx, groupId, edit);
  }

  /** Tells `username` that their messages up to now have been read, and marks them read here. */
  async markRead(username: string): Promise<number> {
    username = canonical(username);
    const unread = (await this.conversation(username, Number.MAX_SAFE_INTEGER)).filter(isUnread);
    for (let start = 0; start < unread.length; start += MAX_RECEIPT_IDS) {
      const batch = unread.slice(start, start + MAX_RECEIPT_IDS);
      await this.#sendContent(username, { kind: 'receipt', sentAt: this.#ctx.now(), receipt: 'read', messages: batch.map((m) => m.sentAt) });
      for (const m of batch) await this.#put({ ...m, status: 'read' });
    }
    return unread.length;
  }

  /** Tells `username` that this user started or stopped typing (not stored by anyone). */
  async setTyping(username: string, typing: boolean): Promise<void> {
    await this.#sendContent(username, { kind: 'typing', sentAt: this.#ctx.now(), typing: typing ? 'started' : 'stopped' });
  }

  /** The last `limit` messages with `username`, oldest first. */
  async conversation(username: string, limit = DEFAULT_HISTORY): Promise<StoredMessage[]> {
    const entries = await this.#ctx.store.list('message', `${canonical(username)}/`, { limit, reverse: true });
    return entries.map(([, bytes]) => parse<StoredMessage>(bytes)).reverse();
  }

  /**
   * Every conversation, with its last message and how many incoming texts
   * are unread, newest first. Groups are listed under their conversation id
   * (`groupConversation(groupId)`, `group:<hex>`).
   */
  async conversations(): Promise<{ username: string; last: StoredMessage; unread: number }[]> {
    const summaries = new Map<string, { username: string; last: StoredMessage; unread: number }>();
    for (const [, bytes] of await this.#ctx.store.list('message', '')) {
      const m = parse<StoredMessage>(bytes);
      const summary = summaries.get(m.conversation);
      const unread = isUnread(m) ? 1 : 0;
      if (summary === undefined) summaries.set(m.conversation, { username: m.conversation, last: m, unread });
      else {
        if (summary.last.sentAt <= m.sentAt) summary.last = m;
        summary.unread += unread;
      }
    }
    return [...summaries.values()].sort((a, b) => b.last.sentAt - a.last.sentAt);
  }

  /** The safety number with `username` (fetching their identity key if it is not known yet). */
  async safetyNumber(username: string): Promise<SafetyNumber> {
    const contact = await this.#contact(username);
    const local = this.#ctx.local;
    const fingerprint = await createFingerprint(
      this.#ctx.provider,
      { id: utf8(local.username), identityKey: local.identity.publicKey },
      { id: utf8(contact.username), identityKey: fromBase64(contact.identityKey) },
    );
    return { digits: fingerprint.displayable, scannable: fingerprint.scannable, verified: contact.verified };
  }

  /**
   * Marks `username` verified, after the user compared safety numbers, and
   * lifts a block on sending after a key change. Pass the digits shown (or
   * scanned) to have them checked against the current key first.
   * @throws ClientError `INVALID_ARGUMENT` if the digits given are not the current safety number.
   */
  async verify(username: string, digits?: string): Promise<void> {
    const current = await this.safetyNumber(username);
    if (digits !== undefined && digits.replace(/\s+/g, '') !== current.digits) {
      throw new ClientError('INVALID_ARGUMENT', `that is not the safety number with ${username}; it may have changed`);
    }
    await this.#setTrust(username, true);
  }

  /** Clears the verified mark of `username`. */
  async unverify(username: string): Promise<void> {
    await this.#setTrust(username, false);
  }

  /**
   * What this device knows of `username`'s trust, from the local store only
   * (no network): verified, blocked (the key changed while verified, so
   * sending waits for a new verification), and keyChanged (a change not yet
   * verified or dismissed, for a banner). Undefined for an account this
   * device has never heard of.
   * @throws ClientError `INVALID_ARGUMENT` for a username that cannot exist.
   */
  async contact(username: string): Promise<{ username: string; verified: boolean; blocked: boolean; keyChanged: boolean } | undefined> {
    const contact = await loadContact(new Transaction(this.#ctx.store), canonical(username));
    if (contact === undefined) return undefined;
    return { username: contact.username, verified: contact.verified, blocked: contact.blocked, keyChanged: contact.keyChanged };
  }

  /**
   * Dismisses the news that `username`'s key changed (clears `keyChanged`),
   * leaving them unverified; a block on sending stays until `verify`.
   */
  async dismissKeyChange(username: string): Promise<void> {
    const name = canonical(username);
    await this.#ctx.exclusive(async () => {
      const tx = new Transaction(this.#ctx.store);
      const contact = await loadContact(tx, name);
      if (contact === undefined || !contact.keyChanged) return;
      saveContact(tx, { ...contact, keyChanged: false });
      await tx.commit();
    });
  }

  /** The devices of this account, from its verified device list. */
  async devices(): Promise<{ deviceId: number; registrationId: number; current: boolean }[]> {
    const contact = await this.#ctx.exclusive(async () => {
      const tx = new Transaction(this.#ctx.store);
      const after: (() => void)[] = [];
      const fresh = await refreshContact(this.#ctx, tx, this.#ctx.local.username, after);
      await tx.commit();
      for (const emit of after) emit();
      return fresh;
    });
    return contact.devices.map((d) => ({ ...d, current: d.deviceId === this.#ctx.local.deviceId }));
  }

  /**
   * Fetches `username`'s identity key and device list again and checks them.
   * A new key is reported (an `identityChange` event and a notice in the
   * conversation); apps call this when a conversation opens.
   * @throws ClientError `UNKNOWN_USER`, `INVALID_DEVICE_LIST`, `NETWORK`.
   */
  async refreshContact(username: string): Promise<void> {
    await this.#ctx.exclusive(async () => {
      const tx = new Transaction(this.#ctx.store);
      const after: (() => void)[] = [];
      await refreshContact(this.#ctx, tx, canonical(username), after);
      await tx.commit();
      for (const emit of after) emit();
    });
  }

  /**
   * Messages that could not be decrypted and were not recovered (resent by
   * their sender) within `graceMs`. Zero when all is well.
   */
  async undecryptableCount(graceMs = UNDECRYPTABLE_GRACE_MS): Promise<number> {
    return countUndecryptable(this.#ctx, graceMs);
  }

  /**
   * This device's keys on the server: one-time prekeys left (refilled by
   * batches when low, after each drain) and the signed prekey in use (rotated
   * weekly).
   */
  async keyStatus(): Promise<{ preKeys: number; kyberPreKeys: number; signedPreKeyId: number; signedPreKeyAt: number }> {
    const counts = await this.#ctx.api.keyCounts();
    return { ...counts, signedPreKeyId: this.#ctx.local.signedPreKeyId, signedPreKeyAt: this.#ctx.local.signedPreKeyAt };
  }

  async #contact(username: string): Promise<Contact> {
    const name = canonical(username);
    const known = await loadContact(new Transaction(this.#ctx.store), name);
    if (known !== undefined) return known;
    return this.#ctx.exclusive(async () => {
      const tx = new Transaction(this.#ctx.store);
      const after: (() => void)[] = [];
      const contact = await refreshContact(this.#ctx, tx, name, after);
      await tx.commit();
      for (const emit of after) emit();
      return contact;
    });
  }

  async #setTrust(username: string, verified: boolean): Promise<void> {
    await this.#contact(username);
    await this.#ctx.exclusive(async () => {
      const tx = new Transaction(this.#ctx.store);
      const contact = await loadContact(tx, canonical(username));
      if (contact === undefined) return;
      // Verifying lifts a block after a key change, and settles the change; unverifying does neither.
      saveContact(tx, { ...contact, verified, blocked: verified ? false : contact.blocked, keyChanged: verified ? false : contact.keyChanged });
      await tx.commit();
    });
  }

  async #sendContent(username: string, content: Content): Promise<void> {
    this.connect();
    await send(this.#ctx, [{ username: canonical(username), plaintext: encodable(content) }]);
  }

  async #put(message: StoredMessage): Promise<void> {
    await this.#ctx.store.write([{ ns: 'message', key: messageKey(message), value: json(message) }]);
  }

  async #advance(message: StoredMessage, status: StoredMessage['status']): Promise<StoredMessage> {
    // Under the lock: a receipt processed meanwhile must not be overwritten.
    const updated = await this.#ctx.exclusive(async () => {
      const stored = await this.#ctx.store.get('message', messageKey(message));
      const current = stored === undefined ? message : parse<StoredMessage>(stored);
      if (current.status !== 'sending') return current; // a receipt got here first
      const next = { ...current, status };
      await this.#put(next);
      return next;
    });
    if (updated.status === status) this.events.emit('status', updated);
    return updated;
  }

  /** Marks an envelope that can never be processed as seen, with a warning, and for a poison one a notice in its sender's conversation. */
  async #dropPoison(envelope: Envelope, error: unknown, attempts: number): Promise<void> {
    const reason = error instanceof Error ? error.message : String(error);
    this.events.emit('warning', { message: `dropped an envelope from ${envelope.source}${attempts > 0 ? ` after ${attempts} attempts` : ''}: ${reason}`, cause: error });
    const tx = new Transaction(this.#ctx.store);
    tx.put('seen', seenKey(envelope.id), new Uint8Array(0));
    const notice = attempts > 0 ? addNotice(this.#ctx, tx, envelope.source, `A message from ${envelope.source} could not be processed and was dropped.`) : undefined;
    await tx.commit();
    if (notice !== undefined) this.events.emit('message', notice);
  }

  /** Processes queued envelopes one at a time, in order, acknowledging each once stored. */
  async #processInbox(): Promise<void> {
    if (this.#processing) return;
    this.#processing = true;
    try {
      while (this.#inbox.length > 0 && !this.#closed) {
        const envelope = this.#inbox[0]!;
        let result;
        try {
          result = await this.#ctx.exclusive(() => receive(this.#ctx, envelope));
        } catch (error) {
          const attempts = isClientError(error, 'NETWORK') ? 0 : (this.#attempts.get(envelope.id) ?? 0) + 1;
          if ((isClientError(error) && PERMANENT_FAILURES.has(error.code)) || attempts >= MAX_ENVELOPE_ATTEMPTS) {
            // It can never be processed (the sender's account is gone, its device list does not verify, or it fails
            // every time): drop it and say so, and let the rest of the mailbox through.
            this.#attempts.delete(envelope.id);
            this.#ctx.log.warn('envelope.dropped', { id: envelope.id, from: addressOf(envelope), code: errorCode(error), attempts });
            await this.#dropPoison(envelope, error, attempts);
            this.#inbox.shift();
            this.#ctx.transport.ack([envelope.id]);
            continue;
          }
          if (attempts > 0) this.#attempts.set(envelope.id, attempts);
          this.#ctx.log.warn('envelope.failed', { id: envelope.id, from: addressOf(envelope), code: errorCode(error), attempts });
          // Network or storage trouble: unacknowledged, the envelope comes again on a new connection.
          this.events.emit('warning', { message: `could not process an envelope from ${envelope.source}; retrying`, cause: error });
          this.#inbox = [];
          this.#replaying = true;
          this.#ctx.transport.reconnect();
          return;
        }
        this.#attempts.delete(envelope.id);
        this.#inbox.shift();
        this.#ctx.transport.ack([envelope.id]);
        this.#ctx.log.debug('envelope.processed', { id: envelope.id, from: addressOf(envelope), type: envelope.type, bytes: envelope.body.length });
        this.#drainedCount++;
        for (const emit of result.events) emit();
        const { failed, receipt } = result;
        if (failed !== undefined) {
          void requestResend(this.#ctx, failed, this.#sessionResets).catch((error: unknown) => {
            this.events.emit('warning', { message: `could not ask ${failed.from} to resend a message`, cause: error });
          });
        }
        if (result.resendRequested === true) {
          void answerResendRequests(this.#ctx).catch((error: unknown) => {
            this.events.emit('warning', { message: 'could not resend a message after a decryption error', cause: error });
          });
        }
        if (result.resync === true) void this.#flushResyncs();
        if (receipt !== undefined) {
          void this.#sendContent(receipt.to, { kind: 'receipt', sentAt: this.#ctx.now(), receipt: 'delivery', messages: [receipt.sentAt] }).catch((error: unknown) => {
            this.events.emit('warning', { message: `could not send a delivery receipt to ${receipt.to}`, cause: error });
          });
        }
      }
    } finally {
      this.#processing = false;
    }
  }

  /** Resolves once every envelope received so far is processed. */
  async #idle(): Promise<void> {
    while ((this.#processing || this.#inbox.length > 0) && !this.#closed) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  async #afterDrain(): Promise<void> {
    await this.#idle();
    this.#drained = true;
    const count = this.#drainedCount;
    this.#drainedCount = 0;
    this.events.emit('drained', { count });
    await this.#flushResyncs();
    await this.#maintainKeysOrWarn();
  }

  /** Sends queued group resyncs, one flush at a time (two at once would send the same answers twice). */
  #flushResyncs(): Promise<void> {
    const run = this.#resyncing.then(async () => {
      for (const cause of await flushResyncs(this.#ctx)) {
        this.events.emit('warning', { message: 'could not ask for or send missed group changes; will retry after the next drain', cause });
      }
    });
    this.#resyncing = run.catch(() => undefined);
    return this.#resyncing;
  }

  /** The account exists whatever happens here: a failed refill is retried after the next drain. */
  async #maintainKeysOrWarn(): Promise<void> {
    await this.#maintainKeys().catch((error: unknown) => {
      this.events.emit('warning', { message: 'could not refill or rotate prekeys; will retry', cause: error });
    });
  }

  /** Refills and rotates keys, one run at a time (two runs would make different keys under the same ids). */
  #maintainKeys(): Promise<void> {
    const run = this.#maintaining.then(() => this.#upkeep());
    this.#maintaining = run.catch(() => undefined);
    return run;
  }

  async #upkeep(): Promise<void> {
    const { provider, api, store } = this.#ctx;
    await pruneSent(this.#ctx);
    await pruneSeen(this.#ctx);
    const before = this.#ctx.local;
    let local = await refillPreKeys(provider, api, store, before, this.#ctx.now());
    if (local.nextPreKeyId !== before.nextPreKeyId) this.#ctx.log.info('prekeys.refilled', { firstId: before.nextPreKeyId, nextId: local.nextPreKeyId });
    local = await rotateSignedPreKeys(provider, api, store, local, this.#ctx.now());
    if (local.signedPreKeyId !== before.signedPreKeyId) this.#ctx.log.info('prekeys.rotated', { signedPreKeyId: local.signedPreKeyId });
    this.#ctx.local = local;
  }
}

export type { Contact, StoredMessage };
