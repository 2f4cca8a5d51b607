/**
 * The post office: checks each send against its destinations' device sets,
 * stores accepted envelopes durably, answers the sender only after the commit,
 * and hands stored envelopes to the recipients' open connections. A multicast
 * (one body for many devices) comes in as the send it stands for
 * (`multicastDestinations`), so it takes exactly the same path.
 *
 * Writes are group-committed: every send and acknowledgement that arrives
 * while a transaction runs goes into the next one, so one commit (one fsync on
 * SQLite) serves many senders. A send is stored whole or not at all.
 */
import type { Kysely } from 'kysely';

import type { DeviceMismatch, Destination, MulticastRecipient, SendRefusalCode } from '@parley/protocol';

import type { DeviceIdentity } from '../auth/tokens.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Directory } from '../directory.js';
import type { StoredAccount } from '../storage/accounts.js';
import { faultPoint } from '../faultPoints.js';
import { MAX_ENVELOPE_BYTES, MAX_MAILBOX_ENVELOPES, MAX_SEND_STORED_BYTES } from '../limits.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Limiter } from '../rateLimit.js';
import { mailboxKey, readMailbox, type Acknowledgement, type Committed, type MailboxWriter, type NewEnvelope, type StoredEnvelope } from '../storage/mailbox.js';
import type { Schema } from '../storage/schema.js';

/** A device's sender identity, as its envelopes name it. */
export interface Sender extends DeviceIdentity {
  readonly username: string;
}

export type SendOutcome =
  | { readonly ok: true; readonly timestamp: number }
  | { readonly ok: false; readonly code: SendRefusalCode; readonly message: string; readonly mismatches: readonly DeviceMismatch[] };

/** Who receives stored envelopes as they are committed: an open connection for the mailbox. */
export interface MailboxListener {
  offer(envelope: StoredEnvelope): void;
  /** Something may have been committed to the mailbox that was not offered: read it from storage. */
  catchUp(): void;
  /** Ends the listener's connection (it was replaced, or its device removed). */
  end(code: number, reason: string): void;
}

interface PendingSend {
  readonly envelopes: NewEnvelope[];
  readonly resolve: (outcome: SendOutcome) => void;
}

/**
 * A multicast as the send it stands for: a message to every device it names,
 * each of the same `type` and holding the very same `body` (no copy: the
 * group commit and the SQLite writer's thread see one buffer, and structured
 * cloning keeps it one). Checks, storage and pushes are then those of a send,
 * the sender's own device included (naming it is `extra`, leaving out the
 * sender's other devices is `missing`).
 */
export function multicastDestinations(type: number, body: Uint8Array, recipients: readonly MulticastRecipient[]): Destination[] {
  return recipients.map((recipient) => ({
    username: recipient.username,
    messages: recipient.devices.map((device) => ({ deviceId: device.deviceId, registrationId: device.registrationId, type, body })),
  }));
}

const refuse = (code: SendRefusalCode, message: string, mismatches: readonly DeviceMismatch[] = []): SendOutcome => ({
  ok: false,
  code,
  message,
  mismatches,
});

export class PostOffice {
  readonly #db: Kysely<Schema>;
  readonly #writer: MailboxWriter;
  readonly #directory: Directory;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #lookups: Limiter;
  readonly #cluster: Cluster | undefined;
  readonly #listeners = new Map<string, MailboxListener>();

  #sends: PendingSend[] = [];
  #acks = new Map<string, { readonly accountId: number; readonly deviceId: number; readonly ids: number[] }>();
  #scheduled = false;
  #flushing: Promise<void> | undefined;
  #lastTimestamp = 0;

  constructor(deps: {
    db: Kysely<Schema>;
    /** Runs the group commits (see storage/mailbox.ts). */
    writer: MailboxWriter;
    directory: Directory;
    metrics: Metrics;
    log: Logger;
    now: () => number;
    /** Each requester's budget for looking up accounts (see BUNDLE_FETCH_LIMITS). */
    lookups: Limiter;
    /** The other nodes, when this is one of several (see cluster/cluster.ts); absent for a single node. */
    cluster?: Cluster;
  }) {
    this.#lookups = deps.lookups;
    this.#cluster = deps.cluster;
    this.#db = deps.db;
    this.#writer = deps.writer;
    this.#directory = deps.directory;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.#now = deps.now;
  }

  /**
   * Checks a send against its destinations' device sets and queues it for
   * storage; `answer` is called once, when the send is committed or refused.
   * When every destination account is in the directory's cache this all
   * happens at once and nothing is returned. Otherwise the returned promise
   * resolves once the accounts are read and the send checked; a connection
   * waits for it before accepting its next send, so that sends are stored in
   * the order sent. It rejects only if reading an account fails.
   */
  accept(sender: Sender, destinations: readonly Destination[], answer: (outcome: SendOutcome) => void): Promise<void> | undefined {
    let stored = 0;
    for (const destination of destinations) {
      for (const message of destination.messages) {
        if (message.body.length > MAX_ENVELOPE_BYTES) {
          answer(refuse('MESSAGE_TOO_LARGE', `an envelope body is at most ${MAX_ENVELOPE_BYTES} bytes`));
          return undefined;
        }
        stored += message.body.length;
      }
    }
    if (stored > MAX_SEND_STORED_BYTES) {
      answer(refuse('MESSAGE_TOO_LARGE', `one send stores at most ${MAX_SEND_STORED_BYTES} bytes across its mailboxes, not ${stored}`));
      return undefined;
    }
    const accounts: StoredAccount[] = [];
    for (const destination of destinations) {
      const account = this.#directory.cached(destination.username);
      if (account === undefined) return this.#acceptAfterLookups(sender, destinations, accounts, answer);
      accounts.push(account);
    }
    this.#check(sender, destinations, accounts, answer);
    return undefined;
  }

  /** `accept` for a send naming accounts not in the cache: reads them in order, up to the first that does not exist. */
  async #acceptAfterLookups(
    sender: Sender,
    destinations: readonly Destination[],
    accounts: StoredAccount[],
    answer: (outcome: SendOutcome) => void,
  ): Promise<void> {
    for (const destination of destinations.slice(accounts.length)) {
      const account = await this.#directory.byUsername(destination.username);
      if (account === undefined) {
        // Every probe for an account that does not exist draws on the requester's lookup budget, shared with bundle fetches.
        const retryAfter = await this.#lookups.take(String(sender.accountId));
        answer(
          retryAfter > 0
            ? refuse('RATE_LIMITED', `too many lookups of unknown accounts; retry in ${retryAfter} s`)
            : refuse('UNKNOWN_RECIPIENT', `no account named ${destination.username}`),
        );
        return;
      }
      accounts.push(account);
    }
    this.#check(sender, destinations, accounts, answer);
  }

  /** Checks a send whose destination accounts are `accounts` (in order), and queues it or refuses it. */
  #check(sender: Sender, destinations: readonly Destination[], accounts: readonly StoredAccount[], answer: (outcome: SendOutcome) => void): void {
    const envelopes: NewEnvelope[] = [];
    const mismatches: DeviceMismatch[] = [];
    destinations.forEach((destination, i) => {
      const account = accounts[i]!;
      const named = new Set<number>();
      const extra: number[] = [];
      const stale: number[] = [];
      for (const message of destination.messages) {
        named.add(message.deviceId);
        const device = account.devices.get(message.deviceId);
        const own = account.id === sender.accountId && message.deviceId === sender.deviceId;
        if (device === undefined || own) extra.push(message.deviceId);
        else if (device.registrationId !== message.registrationId) stale.push(message.deviceId);
      }
      const missing = [...account.devices.keys()].filter(
        (id) => !named.has(id) && !(account.id === sender.accountId && id === sender.deviceId),
      );
      if (missing.length + extra.length + stale.length > 0) {
        mismatches.push({ username: account.username, missing, extra, stale });
        return;
      }
      for (const message of destination.messages) {
        envelopes.push({
          accountId: account.id,
          deviceId: message.deviceId,
          source: sender.username,
          sourceDevice: sender.deviceId,
          type: message.type,
          body: message.body,
        });
      }
    });
    if (mismatches.length > 0) {
      answer(refuse('DEVICE_MISMATCH', 'the send does not name exactly the devices of its destinations', mismatches));
    } else {
      this.#sends.push({ envelopes, resolve: answer });
      this.#schedule();
    }
  }

  /** Queues the deletion of acknowledged envelopes from one mailbox. */
  acknowledge(mailbox: DeviceIdentity, ids: readonly number[]): void {
    const key = mailboxKey(mailbox.accountId, mailbox.deviceId);
    const entry = this.#acks.get(key) ?? { accountId: mailbox.accountId, deviceId: mailbox.deviceId, ids: [] };
    entry.ids.push(...ids);
    this.#acks.set(key, entry);
    this.#schedule();
  }

  /** Reads a mailbox from storage (for a connection that is draining). */
  read(mailbox: DeviceIdentity, afterId: number, limit: number): Promise<StoredEnvelope[]> {
    return readMailbox(this.#db, mailbox.accountId, mailbox.deviceId, afterId, limit);
  }

  /**
   * Sets the listener for a mailbox, returning the one it replaces. In a
   * cluster, the mailbox is claimed too: an older connection on another node
   * is closed.
   */
  listen(mailbox: DeviceIdentity, listener: MailboxListener): MailboxListener | undefined {
    const key = mailboxKey(mailbox.accountId, mailbox.deviceId);
    const previous = this.#listeners.get(key);
    this.#listeners.set(key, listener);
    this.#cluster?.claim(mailbox);
    return previous;
  }

  /** The listener of a mailbox, if any. */
  listener(mailbox: DeviceIdentity): MailboxListener | undefined {
    return this.#listeners.get(mailboxKey(mailbox.accountId, mailbox.deviceId));
  }

  /** Every listener on this node (for a cluster's catch-up). */
  listeners(): IterableIterator<MailboxListener> {
    return this.#listeners.values();
  }

  /** Removes a mailbox's listener, if it is still `listener`. */
  unlisten(mailbox: DeviceIdentity, listener: MailboxListener): void {
    const key = mailboxKey(mailbox.accountId, mailbox.deviceId);
    if (this.#listeners.get(key) !== listener) return;
    this.#listeners.delete(key);
    this.#cluster?.release(mailbox);
  }

  /** Closes the mailbox's connection, on whichever node it is (its device was removed). */
  evict(mailbox: DeviceIdentity, code: number, reason: string): void {
    this.listener(mailbox)?.end(code, reason);
    this.#cluster?.evict(mailbox);
  }

  /** Sends waiting for the next commit. */
  get queueDepth(): number {
    return this.#sends.length;
  }

  /**
   * Resolves when everything queued before the call has been committed: at
   * most the running commit and the next one, however busy the server is.
   */
  async flush(): Promise<void> {
    if (this.#flushing !== undefined) await this.#flushing;
    if (this.#flushing !== undefined) await this.#flushing;
    else if (this.#sends.length > 0 || this.#acks.size > 0) await this.#run();
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing !== undefined) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#flushing === undefined) void this.#run();
    });
  }

  #run(): Promise<void> {
    const sends = this.#sends;
    const acks = [...this.#acks.values()];
    this.#sends = [];
    this.#acks = new Map();
    this.#flushing = this.#commit(sends, acks).finally(() => {
      this.#flushing = undefined;
      if (this.#sends.length > 0 || this.#acks.size > 0) this.#schedule();
    });
    return this.#flushing;
  }

  async #commit(sends: readonly PendingSend[], acks: readonly Acknowledgement[]): Promise<void> {
    const started = performance.now();
    const timestamp = (this.#lastTimestamp = Math.max(this.#lastTimestamp, this.#now()));
    let committed: Committed;
    try {
      committed = await this.#writer.commit(
        sends.map((s) => s.envelopes),
        acks,
        timestamp,
      );
    } catch (error) {
      this.#log.error({ err: error, sends: sends.length }, 'storing a batch failed; its sends are refused');
      this.#metrics.errors.inc({ code: 'STORAGE' });
      for (const send of sends) send.resolve(refuse('UNAVAILABLE', 'the server could not store the send; try again'));
      return;
    }
    if (committed.firstId !== 0) faultPoint('after-store');
    this.#metrics.batchSeconds.observe((performance.now() - started) / 1000);
    this.#metrics.acked.inc(acks.reduce((n, a) => n + a.ids.length, 0));
    const stored: StoredEnvelope[] = [];
    let id = committed.firstId;
    sends.forEach((send, i) => {
      if (committed.admitted[i] === true) {
        for (const envelope of send.envelopes) stored.push({ ...envelope, id: id++, timestamp });
        send.resolve({ ok: true, timestamp });
      } else {
        this.#metrics.refused.inc({ code: 'MAILBOX_FULL' });
        send.resolve(refuse('MAILBOX_FULL', `a recipient's mailbox holds ${MAX_MAILBOX_ENVELOPES} envelopes already`));
      }
    });
    this.#metrics.stored.inc(stored.length);
    if (this.#cluster === undefined) {
      for (const envelope of stored) this.#listeners.get(mailboxKey(envelope.accountId, envelope.deviceId))?.offer(envelope);
    } else {
      this.#wakeCluster(this.#cluster, stored);
    }
  }

  /**
   * In a cluster, ids are given in commit order across all nodes, but a
   * connection learns of other nodes' commits later than of this one's: an
   * offer could push id 20 before a wake brings id 15, which a read after
   * the cursor would then skip. So every connection reads what was committed
   * (one read per mailbox and commit, coalesced while one runs), and every
   * other node holding the mailbox is woken, in case a newer connection of
   * the device is there.
   */
  #wakeCluster(cluster: Cluster, stored: readonly StoredEnvelope[]): void {
    const mailboxes = new Map<string, DeviceIdentity>();
    for (const envelope of stored) mailboxes.set(mailboxKey(envelope.accountId, envelope.deviceId), envelope);
    for (const [key, mailbox] of mailboxes) {
      this.#listeners.get(key)?.catchUp();
      cluster.stored({ accountId: mailbox.accountId, deviceId: mailbox.deviceId });
    }
  }
}
