/**
 * Every limit of the protocol layer, with the reason for its value. The first
 * four and MAX_UNACKNOWLEDGED_SESSION_AGE_MS match libsignal's
 * (rust/protocol/src/consts.rs), so that the two implementations accept and
 * refuse the same traffic; the rest are Parley's.
 */

/**
 * How far ahead of a chain's next index a message counter may be. Deriving
 * keys for a gap costs two HMACs per skipped message, before any MAC can be
 * checked, so an attacker who could name any counter could make us do 2^32 of
 * them; 25,000 covers a phone offline for a long time while capping the work
 * at about half a second on node:crypto. The cap is a budget for the whole
 * message, shared by every archived state it is tried on.
 */
export const MAX_FORWARD_JUMPS = 25_000;

/**
 * Skipped message keys kept per receiving chain (oldest dropped first). Each
 * one is a key that can still decrypt; keeping fewer bounds the memory and the
 * forward-secrecy exposure of a session, keeping enough covers reordering.
 */
export const MAX_MESSAGE_KEYS = 2_000;

/** Receiving chains kept per session: enough for messages still in flight across a few DH ratchet steps. */
export const MAX_RECEIVER_CHAINS = 5;

/**
 * Previous (archived) session states kept per address, so that messages sent
 * on a session the peer has since replaced still decrypt.
 */
export const ARCHIVED_STATES_MAX_LENGTH = 40;

/**
 * Skipped keys stored per session across all its chains: MAX_MESSAGE_KEYS for
 * each of MAX_RECEIVER_CHAINS chains.
 */
export const MAX_SKIPPED_KEYS_PER_SESSION = MAX_MESSAGE_KEYS * MAX_RECEIVER_CHAINS;

/**
 * Largest ciphertext message accepted for decoding. A Parley message is at most
 * a few MiB of padded plaintext; anything larger is refused before parsing.
 */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

/**
 * How long Alice keeps resending prekey information without an answer before
 * she gives up on the session: a bundle that old has surely been replaced.
 */
export const MAX_UNACKNOWLEDGED_SESSION_AGE_MS = 30 * 24 * 60 * 60 * 1000;

/** Safety-number hashing rounds, as in Signal's apps. */
export const FINGERPRINT_ITERATIONS = 5_200;

/** The most hashing rounds a safety number may ask for (libsignal's bound): a cap on the work a caller can request. */
export const FINGERPRINT_MAX_ITERATIONS = 1_000_000;

/**
 * Devices per account, the primary included. Every send fans out to each of
 * them, so the cap bounds the work and the mailbox space one message can take;
 * Signal allows a primary and five linked devices, Parley a little more.
 */
export const MAX_DEVICES_PER_ACCOUNT = 16;

/** The highest device id. Ids are never reused, so this also caps how many devices an account can ever link. */
export const MAX_DEVICE_ID = 1_024;

/**
 * Accounts one send may address. One for a direct message; a group send
 * addresses every member at once, and a group is capped well below this.
 */
export const MAX_SEND_DESTINATIONS = 1_024;

/**
 * Accounts one multicast may address. A multicast carries one group message
 * (a sender-key ciphertext) to every member device, so it addresses at most a
 * group's largest membership: the client caps groups at 1,000 members
 * (packages/client `groups/roster.ts`), and the sender's own account is among
 * them. With MAX_DEVICES_PER_ACCOUNT devices each, this also bounds the
 * envelopes one multicast stores (16,000) and the size of its recipient list
 * (well under MAX_FRAME_BYTES beside the largest body).
 */
export const MAX_MULTICAST_RECIPIENTS = 1_000;

/** Acknowledgements in one frame: enough to ack a full delivery window at once. */
export const MAX_ACKS_PER_FRAME = 1_024;

/** A registration id is 14 bits, never zero (as libsignal draws them). */
export const MAX_REGISTRATION_ID = 0x3fff;

/**
 * Largest body of one provisioning-relay message (`wire/provisioning.ts`). The
 * old device sends the new one what it needs to start (the identity key pair,
 * account and profile keys) and may follow with a window of recent message
 * history; 4 MiB carries a useful window in a few messages while bounding what
 * the relay holds for one message.
 */
export const MAX_PROVISIONING_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Largest provisioning frame (one WebSocket message): a `message` frame with
 * the largest body, plus its framing (two tags and two length varints, 10 bytes
 * at this size) and a little room. The relay's WebSocket refuses anything
 * larger unread (1009).
 */
export const MAX_PROVISIONING_FRAME_BYTES = MAX_PROVISIONING_MESSAGE_BYTES + 64;

/**
 * Sender key states kept per sender and distribution (libsignal's
 * MAX_SENDER_KEY_STATES). A sender who rotates its key (after a member leaves)
 * starts a new chain; keeping the last few lets messages sent on the older
 * chains, still in flight, decrypt. The oldest state is dropped first.
 */
export const MAX_SENDER_KEY_STATES = 5;

/**
 * Skipped message keys kept per sender key state (libsignal uses
 * MAX_MESSAGE_KEYS here too), oldest dropped first: enough to cover group
 * messages delivered out of order, while bounding the memory and the
 * forward-secrecy exposure of a state, since each kept key can still decrypt.
 */
export const MAX_SENDER_MESSAGE_KEYS = MAX_MESSAGE_KEYS;
