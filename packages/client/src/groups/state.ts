/**
 * What a device keeps of each group, and its sender keys.
 *
 *   namespace       key                                        value
 *   group           <group id, hex>                            GroupRecord (JSON; public: the roster and its signed chain)
 *   senderKey       <username>.<device>/<distribution id>      libsignal SenderKeyRecord (secret)
 *   senderKeyGroup  <username>.<device>/<distribution id>      the group id (hex) the key was distributed for
 *
 * The chain is every signed change from the create on, so that a device can
 * hand a new member the whole history to verify instead of a roster to trust.
 */
import { fromHex, toHex } from '@parley/crypto';
import {
  bytesToUuid,
  deserializeSenderKeyRecord,
  serializeSenderKeyRecord,
  type ProtocolAddress,
  type SenderKeyRecord,
  type SenderKeyStore,
} from '@parley/protocol';

import { fromBase64, toBase64 } from '../base64.js';
import type { Transaction } from '../store/kv.js';
import { json, parse } from '../store/records.js';
import type { GroupMember, GroupRole, Roster } from './roster.js';

/** The conversation a group's messages are stored under (no username contains a colon). */
export const groupConversation = (groupId: string) => `group:${groupId}`;

interface StoredMember {
  readonly username: string;
  /** base64 of the serialized identity key. */
  readonly identityKey: string;
  readonly role: GroupRole;
}

/** A group as this device keeps it. */
export interface GroupRecord {
  /** 32 hex digits. */
  readonly id: string;
  readonly title: string;
  readonly version: number;
  /** base64 of the roster hash. */
  readonly hash: string;
  readonly members: readonly StoredMember[];
  /** Every signed change, base64, the one making version v at index v − 1. */
  readonly chain: readonly string[];
  /** This account is in the roster (false once removed or left). */
  readonly member: boolean;
  /** The distribution id of this device's current sender key; none when it must be made afresh (after a removal). */
  readonly distributionId?: string | undefined;
  /** The devices ("username.device") that hold the current sender key. */
  readonly keyed: readonly string[];
  /** Members whose key this device found differing from the roster's, as "username:key", each alerted once. */
  readonly warned?: readonly string[];
  /**
   * Changes made here and not yet delivered: from version `from` on, to every
   * member, the whole chain to `newcomers`, and to `alsoTo` (members removed
   * since, who must learn it too).
   */
  readonly undelivered?: { readonly from: number; readonly newcomers: readonly string[]; readonly alsoTo: readonly string[] } | undefined;
}

export function rosterOf(record: GroupRecord): Roster {
  return {
    id: fromHex(record.id),
    title: record.title,
    version: record.version,
    hash: fromBase64(record.hash),
    members: record.members.map((m): GroupMember => ({ username: m.username, identityKey: fromBase64(m.identityKey), role: m.role })),
  };
}

/** The record fields that mirror `roster`. */
export function rosterFields(roster: Roster): Pick<GroupRecord, 'id' | 'title' | 'version' | 'hash' | 'members'> {
  return {
    id: toHex(roster.id),
    title: roster.title,
    version: roster.version,
    hash: toBase64(roster.hash),
    members: roster.members.map((m) => ({ username: m.username, identityKey: toBase64(m.identityKey), role: m.role })),
  };
}

export async function loadGroup(tx: Transaction, id: string): Promise<GroupRecord | undefined> {
  const bytes = await tx.get('group', id);
  return bytes === undefined ? undefined : parse<GroupRecord>(bytes);
}

export function saveGroup(tx: Transaction, record: GroupRecord): void {
  tx.put('group', record.id, json(record));
}

const senderKeyKey = (sender: ProtocolAddress, distributionId: string) => `${sender.name}.${sender.deviceId}/${distributionId}`;

/** The protocol's sender-key store over one transaction. */
export function senderKeyStore(tx: Transaction): SenderKeyStore {
  return {
    async loadSenderKey(sender: ProtocolAddress, distributionId: string): Promise<SenderKeyRecord | undefined> {
      const bytes = await tx.get('senderKey', senderKeyKey(sender, distributionId));
      return bytes === undefined ? undefined : deserializeSenderKeyRecord(bytes);
    },
    async storeSenderKey(sender: ProtocolAddress, distributionId: string, record: SenderKeyRecord): Promise<void> {
      tx.put('senderKey', senderKeyKey(sender, distributionId), serializeSenderKeyRecord(record).expose());
    },
  };
}

/** The group a sender's key was distributed for, if this device accepted it. */
export async function groupOfSenderKey(tx: Transaction, sender: ProtocolAddress, distributionId: string): Promise<string | undefined> {
  const bytes = await tx.get('senderKeyGroup', senderKeyKey(sender, distributionId));
  return bytes === undefined ? undefined : toHex(bytes);
}

export function recordSenderKeyGroup(tx: Transaction, sender: ProtocolAddress, distributionId: string, groupId: string): void {
  tx.put('senderKeyGroup', senderKeyKey(sender, distributionId), fromHex(groupId));
}

/** A fresh distribution id: a random (version 4) UUID, lowercase and hyphenated as the group cipher wants it. */
export function newDistributionId(random: Uint8Array): string {
  const b = random.slice(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return bytesToUuid(b);
}
