/**
 * Every limit of the server, with the reason for its value. Over a limit, the
 * client gets an explicit error: a send is refused before it is stored, never
 * acknowledged and then dropped.
 */
import { limits as wire } from '@parley/protocol';

/**
 * Largest envelope body. Message text, a reaction or an attachment pointer
 * with its key fits in a few KiB; 256 KiB leaves room for long messages and
 * padding while keeping one send's fan-out to 16 devices under 4 MiB.
 */
export const MAX_ENVELOPE_BYTES = 256 * 1024;

/**
 * Largest WebSocket frame a client may send. One send carries a copy per
 * device, so a frame must fit MAX_DEVICES_PER_ACCOUNT envelopes of the largest
 * size plus framing; anything larger closes the connection (1009) unread. A
 * multicast carries its body once, and its largest recipient list
 * (MAX_MULTICAST_RECIPIENTS accounts of MAX_DEVICES_PER_ACCOUNT devices, about
 * 200 KiB) fits beside the largest body with room to spare.
 */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024 + 64 * 1024;

/**
 * Bytes one send or multicast may store across all its mailboxes. A send's
 * copies are in its frame, so only a multicast (one body, stored once per
 * device) can come near: unbounded, one 4 MiB frame could make the server
 * write 4 GB. 192 MiB takes the longest group text (64 KiB, about 66 KB padded
 * and signed) to 1,000 members on three devices each; larger bodies belong in
 * attachments, uploaded once.
 */
export const MAX_SEND_STORED_BYTES = 192 * 1024 * 1024;

/**
 * Envelopes one device's mailbox may hold. A device offline for weeks in busy
 * groups collects thousands; past this, senders are told MAILBOX_FULL instead
 * of the server filling its disk for a device that may never come back.
 */
export const MAX_MAILBOX_ENVELOPES = 20_000;

/**
 * Envelopes pushed to one connection and not yet acknowledged. A window keeps
 * the link busy without letting one slow reader pin unbounded memory: with
 * MAX_INFLIGHT_BYTES it bounds what the server buffers per connection.
 */
export const MAX_INFLIGHT_ENVELOPES = 128;

/** Bytes of envelopes pushed to one connection and not yet acknowledged (at least one envelope is always allowed). */
export const MAX_INFLIGHT_BYTES = 2 * 1024 * 1024;

/**
 * Sends one connection may have waiting for storage. Past this the server
 * stops reading the socket until some are stored (TCP backpressure), so a
 * fast sender slows down instead of growing the server's queue.
 *
 * A multicast counts as one send, however many devices it names: like a send,
 * it is one frame (at most MAX_FRAME_BYTES, its body held once), one check and
 * one entry of a group commit, stored or refused whole, and answered once. So
 * the memory a connection can hold in the queue is bounded as for sends: the
 * per-device entries of a pending multicast (up to MAX_MULTICAST_RECIPIENTS ×
 * MAX_DEVICES_PER_ACCOUNT) share its body and are small. What a multicast
 * writes to disk is its body once per device, bounded by
 * MAX_SEND_STORED_BYTES; each mailbox's share is bounded by MAX_MAILBOX_ENVELOPES, as for sends.
 */
export const MAX_PENDING_SENDS = 256;

/**
 * Bytes handed to one connection's socket and not yet taken by the network
 * (answers, envelopes). Past this the server stops reading the socket until
 * half has gone out, so a device that sends without reading what it is
 * answered is slowed down by TCP, as for MAX_PENDING_SENDS, instead of the
 * server buffering every answer for it. Above what the in-flight window alone
 * can hold (MAX_INFLIGHT_BYTES, one more envelope, and a MiB for answers and
 * framing), so that a device that merely receives slowly is never stopped from
 * sending its acks and pongs.
 */
export const MAX_UNSENT_BYTES = MAX_INFLIGHT_BYTES + MAX_ENVELOPE_BYTES + 1024 * 1024;

/**
 * Frames a client may send behind its `auth` frame before `ready`. The server
 * stops reading while it checks the token, so only what was already in flight
 * arrives; a client that pipelines its first sends saves a round trip.
 */
export const MAX_EARLY_FRAMES = 64;

/**
 * How long a new WebSocket may take to send its first frame before it is
 * closed (4408): `auth` on a device's socket, `create` or `join` on the
 * provisioning relay's.
 */
export const AUTH_TIMEOUT_MS = 10_000;

/**
 * How often the server pings each WebSocket (`--heartbeat` overrides it); a
 * connection with no pong or frame for a whole interval is dropped. Below the
 * idle timeouts of common proxies and NATs (60 s and up), so that pings also
 * keep an idle connection open through them.
 */
export const HEARTBEAT_INTERVAL_MS = 30_000;

/**
 * Lifetime of a connection token. Short, because a token is a bearer
 * credential; a device signs a fresh challenge to get another.
 */
export const TOKEN_LIFETIME_MS = 10 * 60 * 1000;

/** Lifetime of a login challenge: a round trip, with room for a slow phone. */
export const CHALLENGE_LIFETIME_MS = 60 * 1000;

/** Lifetime of a device-link token: long enough to scan a code on a second device. */
export const LINK_TOKEN_LIFETIME_MS = 10 * 60 * 1000;

/** One-time prekeys (and, separately, one-time Kyber prekeys) in one upload. */
export const MAX_PREKEYS_PER_UPLOAD = 100;

/**
 * One-time prekeys (of each kind) stored per device. Clients keep about 100 on
 * the server; the cap stops a device from using the directory as storage.
 */
export const MAX_STORED_PREKEYS = 1_000;

/** Largest JSON body accepted over HTTP: a full upload of Kyber prekeys (1,569 bytes each, base64) with room to spare. */
export const MAX_HTTP_BODY_BYTES = 512 * 1024;

/**
 * Prekey-bundle fetches: a bucket per requesting account and one per
 * (requester, target). A client fetches a bundle when it starts a session with
 * someone, and looks the account up first, so the burst covers creating or
 * first writing to a group of the largest size (1,000 members: two requests
 * each) at once, while the sustained rate keeps anyone from enumerating
 * usernames quickly, and the per-pair bucket from draining another's one-time
 * keys.
 */
export const BUNDLE_FETCH_LIMITS = {
  perRequester: { burst: 2_500, perSecond: 2 },
  perTarget: { burst: 10, perSecond: 0.1 },
} as const;

/**
 * Login challenges per client address (kept in memory only, never logged).
 * Signatures cannot be guessed, so this is flood control for the challenge
 * table, set high enough that many devices behind one NAT can reconnect at once.
 */
export const CHALLENGE_LIMITS = { burst: 1_000, perSecond: 50 } as const;

/** Registrations per client address (kept in memory only, never logged). */
export const REGISTRATION_LIMITS = { burst: 10, perSecond: 0.05 } as const;


/**
 * Lifetime of a provisioning-relay channel, from `create`; then both sockets
 * are closed (4410). Linking a device is done in a minute or two: as long as a
 * link token lives, to scan a code and transfer history on a slow connection.
 */
export const PROVISIONING_LIFETIME_MS = 10 * 60 * 1000;

/**
 * Messages one provisioning channel relays, both directions together; one
 * more closes both sockets (4422). Linking takes a handful of messages, and
 * history comes in a few messages of up to MAX_PROVISIONING_MESSAGE_BYTES; the
 * cap bounds what one channel can move (256 × 4 MiB = 1 GiB) so the relay is
 * no free file-transfer service.
 */
export const MAX_PROVISIONING_MESSAGES = 256;

/**
 * Provisioning channels open at once, server-wide; a `create` beyond it is
 * closed with 1013 (try again later). Channels are memory only and anonymous:
 * the cap bounds the relay's memory and sockets, whatever the number of
 * client addresses, at about a thousand links in progress at once.
 */
export const MAX_OPEN_CHANNELS = 1_000;

/**
 * Bytes relayed to one party of a provisioning channel and not yet written to
 * its socket. Past this the relay stops reading the other party's socket until
 * they are written (TCP backpressure), so a slow reader bounds what the
 * channel buffers at about two messages instead of everything sent.
 */
export const MAX_PROVISIONING_UNSENT_BYTES = wire.MAX_PROVISIONING_MESSAGE_BYTES;

/**
 * Provisioning `create` and `join` frames per client address, from one
 * bucket (kept in memory only, never logged). A link costs two (the new
 * device creates, the old one joins, often behind the same address), so the
 * burst covers ten links or retries at once; at the sustained rate, one address
 * holds at most about 80 of the MAX_OPEN_CHANNELS over a channel's lifetime.
 */
export const PROVISIONING_LIMITS = { burst: 20, perSecond: 0.1 } as const;

/**
 * In a cluster, how often a node reads the mailbox of every device connected
 * to it while Redis is unreachable (so no wake-ups arrive). It bounds the
 * extra delivery delay of an outage; each poll costs one indexed read per
 * connected device, which at 5 s stays far below what live traffic costs.
 */
export const CLUSTER_DEGRADED_POLL_MS = 5_000;

/**
 * In a cluster, how often a node reads the mailbox of every device connected
 * to it even while Redis is up. Redis pub/sub delivers at most once: a wake
 * published while the publisher's own link to Redis was down is gone. This
 * sweep bounds how long such an envelope can wait, at one read per device
 * per minute.
 */
export const CLUSTER_SWEEP_MS = 60_000;
