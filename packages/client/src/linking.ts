/**
 * Linking a new device, end to end through the server's provisioning relay
 * (docs/API.md, `/v1/provisioning`), as Signal links devices:
 *
 *   existing device                    relay                     new device
 *   create ──────────────────────────►
 *          ◄──────────────── address A
 *   shows the link code: server URL, A, its ephemeral key EA, a secret S
 *                                                  ◄──────────── join A (scanned)
 *          ◄──── joined ─────────────────────────── joined ────►
 *          ◄──────────────────────────────────────────────────── EB
 *   K = HKDF(X25519(EA, EB), salt S, "Parley provisioning v1" ‖ A)
 *   seal_K(identity key pair, username, link token + device id,
 *          signed device list, contacts, history) ─────────────►
 *   (each sealed message binds A and its direction into its AAD)
 *                                                    signs the device list with itself added, links
 *          ◄──────────────────────────────────────────── seal_K(done)
 *
 * The server relays EB and the sealed messages but never sees S, which only
 * the link code carries (shown on one screen, read by the other), so it can
 * neither read the identity key nor stand in for the new device. The history
 * window gives the new device recent conversations, the pain point of new
 * devices in other messengers.
 */
import type { CryptoProvider } from '@parley/crypto';
import {
  concatBytes,
} from '@parley/crypto';
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

/** What the link code carries. */
export interface LinkCode {
  readonly serverUrl: string;
  readonly address: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly secret: Uint8Array;
}

/** `parley://link?v=1&server=…&c=base64url(address ‖ EA ‖ S)` */
export function formatLinkCode(code: LinkCode): string {
  const payload = toBase64Url(concatBytes(code.address, code.publicKey, code.secret));
  return `parley://link?v=${LINK_VERSION}&server=${encodeURIComponent(code.serverUrl)}&c=${payload}`;
}

/** @throws ClientError `INVALID_ARGUMENT` for anything but a link code of this version. */
export function parseLinkCode(text: string): LinkCode {
  const bad = () => new ClientError('INVALID_ARGUMENT', 'that is not a Parley link code (it starts with parley://link)');
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw bad();
  }
  const server = url.searchParams.get('server');
  const payload = url.searchParams.get('c');
  if (url.protocol !== 'parley:' || server === null || payload === null) throw bad();
  if (url.searchParams.get('v') !== String(LINK_VERSION)) throw new ClientError('INVALID_ARGUMENT', 'this link code is from another version of Parley');
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(payload);
  } catch {
    throw bad();
  }
  if (bytes.length !== 16 + 32 + 32) throw bad();
  return { serverUrl: server, address: bytes.slice(0, 16), publicKey: bytes.slice(16, 48), secret: bytes.slice(48) };
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
