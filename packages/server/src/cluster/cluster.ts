/**
 * What one server node asks of the others when several share one PostgreSQL
 * (`--redis`). A single node has no cluster at all: nothing here, and no
 * Redis code, is on its path. The one implementation is redisCluster.ts.
 *
 * The durable state is all in PostgreSQL; what nodes tell each other is only
 * *that* something changed (a mailbox has new envelopes, a device connected
 * elsewhere, an account changed), never what. A message lost between nodes
 * therefore delays delivery, and loses nothing: the mailbox is still read.
 */
import type { DeviceIdentity } from '../auth/tokens.js';
import type { MailboxListener } from '../delivery/postOffice.js';

export interface Cluster {
  /** Envelopes for `mailbox` were committed: wake the other nodes holding a connection for it. */
  stored(mailbox: DeviceIdentity): void;
  /**
   * A connection for `mailbox` opened on this node: hear of its new
   * envelopes from now on, and close any older connection of the device on
   * another node (the newer connection wins).
   */
  claim(mailbox: DeviceIdentity): void;
  /** The mailbox's connection on this node closed. */
  release(mailbox: DeviceIdentity): void;
  /** Close the mailbox's connection on every other node (its device was removed). */
  evict(mailbox: DeviceIdentity): void;
  /** The account changed (devices linked or removed): other nodes must forget their cached copy. */
  accountChanged(accountId: number): void;
  /** Stops listening and disconnects. */
  close(): Promise<void>;
}

/** What a cluster asks of the node it runs in. */
export interface ClusterNode {
  /** The connection on this node for the mailbox, if any. */
  listener(mailbox: DeviceIdentity): MailboxListener | undefined;
  /** Every connection on this node. */
  listeners(): Iterable<MailboxListener>;
  /** Drops this node's cached copy of an account that changed on another node. */
  forgetAccount(accountId: number): void;
  /** Drops every cached account (changes made elsewhere may have gone unheard). */
  forgetAccounts(): void;
}
