/**
 * Linking a new device, end to end through the server's provisioning relay
 * (docs/API.md, `/v1/provisioning`). Either device may show the code: the
 * one that shows it creates the relay channel, the other joins it.
 *
 *   creator (shows the code)           relay                     joiner (reads it)
 *   create ──────────────────────────►
 *          ◄──────────────── address A
 *   shows the code: server URL, A, its ephemeral key EC, a secret S
 *                                                  ◄──────────── join A (scanned)
 *          ◄──── joined ─────────────────────────── joined ────►
 *          ◄──────────────────────────────────────────────────── EJ
 *   K = HKDF(X25519(EC, EJ), salt S, "Parley provisioning v1" ‖ A)
 *
 * Then, whichever of the two is which, over the channel:
 *
 *   existing device                                              new device
 *   seal_K(identity key pair, username, link token + device id,
 *          signed device list, contacts, history) ─────────────►
 *   (each sealed message binds A and its direction into its AAD)
 *                                                    signs the device list with itself added, links
 *          ◄──────────────────────────────────────────── seal_K(done)
 *
 * Two ways round, two kinds of code, so that neither is entered where the
 * other belongs:
 *
 *   parley://link?…  shown by an existing device (`startLink`), entered on the new one (`link`);
 *   parley://join?…  shown by the new device (`requestLink`, Signal's way), approved on an
 *                    existing one (`approveLink`).
 *
 * The server relays EJ and the sealed messages but never sees S, which only
 * the code carries (shown on one screen, read by the other), so it can
 * neither read the identity key nor stand in for either device. The history
 * window gives the new device recent conversations, the pain point of new
 * devices in other messengers.
 */
import { concatBytes, type CryptoProvider, type SecretBytes } from '@parley/crypto';
import {
  decodeProvisioningServerFrame,
  deserializeIdentityKeyPair,
  encodeProvisioningClientFrame,
  fromUtf8,
  ProtoWriter,
  readProto,
  requiredBytes,
  requiredUint32,
  serializeIdentityKeyPair,
  utf8,
  type ProvisioningServerFrame,
} from '@parley/protocol';

import { fromBase64, toBase64Url } from './base64.js';
import { ClientError } from './errors.js';
import type { WebSocketFactory, WebSocketLike } from './transport.js';

/** Version of the link code and of the sealed messages. */
const LINK_VERSION = 1;
const INFO = utf8('Parley provisioning v1');
const NONCE_BYTES = 12;
/** How long either side waits for the other at each step. */
export const LINK_STEP_TIMEOUT_MS = 5 * 60_000;

/**
 * Which device shows a code: `link` codes are shown by a device already in
 * the account (and hand the account over to whoever enters them), `join`
 * codes by a new device waiting to be approved.
 */
export type LinkCodeKind = 'link' | 'join';

/** What a code carries: where the channel is, and the creator's half of its key. */
export interface LinkCode {
  readonly kind: LinkCodeKind;
  readonly serverUrl: string;
  readonly address: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly secret: Uint8Array;
}

/** Address (16 bytes) ‖ the creator's public key (32) ‖ the secret (32). */
const CODE_PAYLOAD_BYTES = 16 + 32 + 32;

/** What to do with a code of this kind, said to whoever entered it where the other kind belongs. */
const WRONG_KIND: Record<LinkCodeKind, string> = {
  link: 'that code is shown by a device already linked: enter it on the new device (it hands over the account)',
  join: 'that code is shown by a new device: approve it from a device already linked to the account',
};

/** `parley://<kind>?v=1&server=…&c=base64url(address ‖ creator's public key ‖ secret)` */
export function formatLinkCode(code: LinkCode): string {
  const payload = toBase64Url(concatBytes(code.address, code.publicKey, code.secret));
  return `parley://${code.kind}?v=${LINK_VERSION}&server=${encodeURIComponent(code.serverUrl)}&c=${payload}`;
}

/**
 * Parses a code of the kind `expected`.
 * @throws ClientError `INVALID_ARGUMENT` for anything but a code of this kind and version, saying so when it is a code of the other kind.
 */
export function parseLinkCode(text: string, expected: LinkCodeKind): LinkCode {
  const bad = () => new ClientError('INVALID_ARGUMENT', `that is not a Parley ${expected} code (it starts with parley://${expected})`);
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw bad();
  }
  const kind = url.hostname;
  if (url.protocol !== 'parley:' || (kind !== 'link' && kind !== 'join')) throw bad();
  if (kind !== expected) throw new ClientError('INVALID_ARGUMENT', WRONG_KIND[kind]);
  const server = url.searchParams.get('server');
  const payload = url.searchParams.get('c');
  if (server === null || payload === null) throw bad();
  if (url.searchParams.get('v') !== String(LINK_VERSION)) throw new ClientError('INVALID_ARGUMENT', `this ${kind} code is from another version of Parley`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(payload);
  } catch {
    throw bad();
  }
  if (bytes.length !== CODE_PAYLOAD_BYTES) throw bad();
  return { kind, serverUrl: server, address: bytes.slice(0, 16), publicKey: bytes.slice(16, 48), secret: bytes.slice(48) };
}

/** The sealed payload the existing device sends: everything the new device needs to become one of the account's. */
export interface Provision {
  readonly username: string;
  readonly identity: ReturnType<typeof deserializeIdentityKeyPair>;
  readonly deviceId: number;
  readonly linkToken: Uint8Array;
  /** The account's current signed device list, which the new device extends with itself. */
  readonly deviceList: { readonly list: Uint8Array; readonly signature: Uint8Array };
  /** Contacts and their trust (JSON), so that verification carries over. */
  readonly contacts: Uint8Array;
  /** Recent messages (JSON), within the history window. */
  readonly history: Uint8Array;
}

export function encodeProvision(p: Provision): Uint8Array {
  const identity = serializeIdentityKeyPair(p.identity);
  const out = new ProtoWriter()
    .uint32(1, LINK_VERSION)
    .bytes(2, utf8(p.username))
    .bytes(3, identity.expose())
    .uint32(4, p.deviceId)
    .bytes(5, p.linkToken)
    .bytes(6, p.deviceList.list)
    .bytes(7, p.deviceList.signature)
    .bytes(8, p.contacts)
    .bytes(9, p.history)
    .finish();
  identity.wipe();
  return out;
}

/** @throws ProtocolError for a payload that does not decode. */
export function decodeProvision(bytes: Uint8Array): Provision {
  const f = readProto(bytes);
  if (requiredUint32(f, 1, 'version') !== LINK_VERSION) throw new ClientError('BAD_RESPONSE', 'the other device runs another version of Parley');
  return {
    username: fromUtf8(requiredBytes(f, 2, 'username'), 'username'),
    identity: deserializeIdentityKeyPair(requiredBytes(f, 3, 'identity').slice()),
    deviceId: requiredUint32(f, 4, 'device id'),
    linkToken: requiredBytes(f, 5, 'link token').slice(),
    deviceList: { list: requiredBytes(f, 6, 'device list').slice(), signature: requiredBytes(f, 7, 'device list signature').slice() },
    contacts: requiredBytes(f, 8, 'contacts').slice(),
    history: requiredBytes(f, 9, 'history').slice(),
  };
}

/** The channel key both sides derive. */
export async function channelKey(provider: CryptoProvider, privateKey: Parameters<CryptoProvider['x25519Agree']>[0], theirPublic: Uint8Array, code: Pick<LinkCode, 'secret' | 'address'>) {
  const shared = await provider.x25519Agree(privateKey, theirPublic);
  try {
    return await provider.hkdfSha256(shared, code.secret, concatBytes(INFO, code.address), 32);
  } finally {
    shared.wipe();
  }
}

/** Which way a sealed message goes: bound into its AAD, so the relay cannot reflect a message back to its sender. */
export type Direction = 'to-new-device' | 'to-existing-device';
const DIRECTION_BYTE: Record<Direction, number> = { 'to-new-device': 1, 'to-existing-device': 2 };
const aad = (address: Uint8Array, direction: Direction) => concatBytes(address, Uint8Array.of(DIRECTION_BYTE[direction]));

export async function seal(
  provider: CryptoProvider,
  key: Parameters<CryptoProvider['aes256GcmEncrypt']>[0],
  address: Uint8Array,
  direction: Direction,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const nonce = provider.randomBytes(NONCE_BYTES);
  return concatBytes(nonce, await provider.aes256GcmEncrypt(key, nonce, plaintext, aad(address, direction)));
}

/** @throws ClientError `BAD_RESPONSE` if the message was not sealed with the channel key for this direction (a relay that tampered). */
export async function open(
  provider: CryptoProvider,
  key: Parameters<CryptoProvider['aes256GcmDecrypt']>[0],
  address: Uint8Array,
  direction: Direction,
  sealed: Uint8Array,
): Promise<Uint8Array> {
  try {
    return await provider.aes256GcmDecrypt(key, sealed.subarray(0, NONCE_BYTES), sealed.subarray(NONCE_BYTES), aad(address, direction));
  } catch (error) {
    throw new ClientError('BAD_RESPONSE', 'the linking channel was tampered with (or the link code was mistyped)', { cause: error });
  }
}

/** A provisioning relay socket, read one frame at a time. */
export class RelaySocket {
  readonly #socket: WebSocketLike;
  readonly #frames: ProvisioningServerFrame[] = [];
  #waiting: (() => void) | undefined;
  #closed: string | undefined;

  private constructor(socket: WebSocketLike) {
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.onmessage = (event) => {
      try {
        const data = event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : (event.data as Uint8Array);
        this.#frames.push(decodeProvisioningServerFrame(data));
      } catch {
        this.#closed = 'the relay sent an undecodable frame';
        socket.close(4400, 'undecodable frame');
      }
      this.#waiting?.();
    };
    socket.onclose = (event) => {
      this.#closed ??= `the linking channel closed (${event.code}${event.reason === '' ? '' : `: ${event.reason}`})`;
      this.#waiting?.();
    };
    socket.onerror = () => undefined;
  }

  static async open(connect: WebSocketFactory, serverUrl: string): Promise<RelaySocket> {
    const socket = connect(`${serverUrl.replace(/\/+$/, '').replace(/^http/, 'ws')}/v1/provisioning`);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => { resolve(); };
      socket.onclose = (event) => { reject(new ClientError('NETWORK', `cannot open the linking channel (${event.code})`)); };
    });
    return new RelaySocket(socket);
  }

  send(frame: Parameters<typeof encodeProvisioningClientFrame>[0]): void {
    this.#socket.send(encodeProvisioningClientFrame(frame));
  }

  /** The next frame, which must be of `kind`. @throws ClientError `NETWORK` if the channel closes or times out first. */
  async next<K extends ProvisioningServerFrame['kind']>(kind: K, timeoutMs = LINK_STEP_TIMEOUT_MS): Promise<Extract<ProvisioningServerFrame, { kind: K }>> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0) {
      if (this.#closed !== undefined) throw new ClientError('NETWORK', this.#closed);
      const left = deadline - Date.now();
      if (left <= 0) throw new ClientError('NETWORK', 'the other device did not answer in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiting = undefined;
    }
    const frame = this.#frames.shift()!;
    if (frame.kind !== kind) throw new ClientError('BAD_RESPONSE', `expected ${kind} on the linking channel, got ${frame.kind}`);
    return frame as Extract<ProvisioningServerFrame, { kind: K }>;
  }

  close(): void {
    this.#socket.close(1000, 'done');
  }
}

/** A relay channel whose key both ends hold. */
export interface Channel {
  readonly relay: RelaySocket;
  readonly address: Uint8Array;
  readonly key: SecretBytes;
}

/** Closes a channel and wipes its key. */
export function closeChannel(channel: Channel): void {
  channel.key.wipe();
  channel.relay.close();
}

/**
 * The creator's side: opens a channel on `serverUrl` and returns the code of
 * `kind` to show. `agree` then waits for the joiner and its key, and wipes
 * the secret whatever happens; closing `relay` cancels.
 * @throws ClientError `NETWORK` if the relay cannot be reached.
 */
export async function createChannel(
  provider: CryptoProvider,
  connect: WebSocketFactory,
  serverUrl: string,
  kind: LinkCodeKind,
): Promise<{ readonly code: string; readonly relay: RelaySocket; readonly agree: () => Promise<Channel> }> {
  const relay = await RelaySocket.open(connect, serverUrl);
  let address: Uint8Array;
  try {
    relay.send({ kind: 'create' });
    ({ address } = await relay.next('address'));
  } catch (error) {
    relay.close();
    throw error;
  }
  const ephemeral = await provider.x25519GenerateKeyPair();
  const secret = provider.randomBytes(32);
  const code = formatLinkCode({ kind, serverUrl, address, publicKey: ephemeral.publicKey, secret });
  const agree = async (): Promise<Channel> => {
    try {
      await relay.next('joined');
      const theirs = (await relay.next('message')).body;
      return { relay, address, key: await channelKey(provider, ephemeral.privateKey, theirs, { secret, address }) };
    } finally {
      secret.fill(0);
    }
  };
  return { code, relay, agree };
}

/**
 * The joiner's side: joins the channel `code` names, sends its own ephemeral
 * key and derives the channel key; the code's secret is wiped.
 * @throws ClientError `NETWORK` if the channel is gone or the creator does not answer.
 */
export async function joinChannel(provider: CryptoProvider, connect: WebSocketFactory, code: LinkCode): Promise<Channel> {
  try {
    const relay = await RelaySocket.open(connect, code.serverUrl);
    try {
      relay.send({ kind: 'join', address: code.address });
      await relay.next('joined');
      const ephemeral = await provider.x25519GenerateKeyPair();
      relay.send({ kind: 'message', body: ephemeral.publicKey });
      return { relay, address: code.address, key: await channelKey(provider, ephemeral.privateKey, code.publicKey, code) };
    } catch (error) {
      relay.close();
      throw error;
    }
  } finally {
    code.secret.fill(0);
  }
}
