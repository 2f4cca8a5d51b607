/**
 * What the parts of a client share: the platform, the server, the store and
 * the local device, the event bus, and one lock under which every operation
 * that touches sessions runs, one at a time.
 */
import type { CryptoProvider } from '@parley/crypto';

import type { ServerApi } from './api.js';
import type { Events } from './events.js';
import type { GroupAlert, GroupInfo } from './groups/groups.js';
import type { Logger } from './log.js';
import type { KeyValueStore } from './store/kv.js';
import type { LocalDevice, StoredMessage } from './store/records.js';
import type { ConnectionState, Transport } from './transport.js';

/** What a client reports, for a UI to show. */
export interface ClientEvents extends Record<string, unknown> {
  /** A message was stored in a conversation: received, sent from here, or sent from another device of this account. */
  message: StoredMessage;
  /** The status of an outgoing message changed (sent, delivered, read). */
  status: StoredMessage;
  /** Someone started or stopped typing. */
  typing: { readonly from: string; readonly typing: boolean };
  /** A contact's identity key changed; a notice is in the conversation. */
  identityChange: { readonly username: string; readonly wasVerified: boolean };
  /** This account's device list changed (a device linked or unlinked). */
  devices: { readonly version: number; readonly deviceIds: readonly number[] };
  connection: { readonly state: ConnectionState; readonly detail: string };
  /** The mailbox was drained after connecting; `count` envelopes were processed on the way. */
  drained: { readonly count: number };
  /** A group's roster changed (a change made here, or one a member sent). */
  group: GroupInfo;
  /**
   * Something a correct server and correct members never cause: a refused
   * group change, a key or message from outside a group's roster, a request
   * for copies to a ghost member or device. A notice is in the group too.
   */
  groupAlert: GroupAlert;
  /** Something went wrong in the background (a receipt not sent, a refill failed); the client carries on. */
  warning: { readonly message: string; readonly cause?: unknown };
}

export interface Context {
  readonly provider: CryptoProvider;
  readonly api: ServerApi;
  readonly store: KeyValueStore;
  readonly transport: Transport;
  readonly events: Events<ClientEvents>;
  readonly now: () => number;
  /** The debug log (a no-op unless the platform has a sink): events with scalar fields only, never secrets (log.ts). */
  readonly log: Logger;
  local: LocalDevice;
  /** Runs `task` after every task queued before it (sessions change one operation at a time). */
  exclusive<T>(task: () => Promise<T>): Promise<T>;
}
