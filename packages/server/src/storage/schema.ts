/**
 * The tables, as Kysely sees them. Every column is listed in docs/PRIVACY.md
 * with why it is kept and for how long. Times are milliseconds since the epoch;
 * binary columns are BLOB on SQLite and BYTEA on PostgreSQL.
 */
import type { Generated } from 'kysely';

export interface AccountsTable {
  id: Generated<number>;
  /** Canonical (case-folded) username. */
  username: string;
  /** Serialized identity public key (33 bytes). */
  identity_key: Uint8Array;
  /** The signed device list: the exact bytes signed, its signature and its version. */
  device_list: Uint8Array;
  device_list_signature: Uint8Array;
  device_list_version: number;
  /** The id the next linked device gets: device ids are never reused. */
  next_device_id: number;
}

export interface DevicesTable {
  account_id: number;
  device_id: number;
  registration_id: number;
  /** Serialized authentication public key (33 bytes), as in the device list. */
  auth_key: Uint8Array;
}

export interface SignedPreKeysTable {
  account_id: number;
  device_id: number;
  key_id: number;
  public_key: Uint8Array;
  signature: Uint8Array;
}

export interface OneTimePreKeysTable {
  account_id: number;
  device_id: number;
  key_id: number;
  public_key: Uint8Array;
}

export interface KyberPreKeysTable {
  account_id: number;
  device_id: number;
  key_id: number;
  public_key: Uint8Array;
  signature: Uint8Array;
  /** 1 for the device's last-resort key, handed out again and again; 0 for one-time keys. */
  last_resort: number;
}

export interface EnvelopesTable {
  /** Allocated from `counters` in storage order, so a mailbox reads in order of `id`. */
  id: number;
  account_id: number;
  device_id: number;
  source: string;
  source_device: number;
  type: number;
  body: Uint8Array;
  timestamp: number;
}

export interface LinkTokensTable {
  /** SHA-256 of the token: a database leak does not leak usable tokens. */
  token_hash: Uint8Array;
  account_id: number;
  device_id: number;
  expires_at: number;
}

export interface AuthChallengesTable {
  challenge: Uint8Array;
  username: string;
  device_id: number;
  expires_at: number;
}

export interface CountersTable {
  name: string;
  value: number;
}

export interface SecretsTable {
  name: string;
  value: Uint8Array;
}

export interface Schema {
  accounts: AccountsTable;
  devices: DevicesTable;
  signed_prekeys: SignedPreKeysTable;
  one_time_prekeys: OneTimePreKeysTable;
  kyber_prekeys: KyberPreKeysTable;
  envelopes: EnvelopesTable;
  link_tokens: LinkTokensTable;
  auth_challenges: AuthChallengesTable;
  counters: CountersTable;
  secrets: SecretsTable;
}
