/**
 * Connection tokens: short-lived bearer credentials a device gets by signing a
 * login challenge. They are stateless — an HMAC by a key every node shares —
 * so checking one costs no database read, and the server keeps no list of
 * who logged in when.
 *
 *   token = base64url(0x01 ‖ u64be(account) ‖ u32be(device) ‖ u64be(expires_ms) ‖ HMAC-SHA256(key, first 21 bytes))
 */
import { constantTimeEqual, type CryptoProvider, type SecretBytes } from '@parley/crypto';

import { TOKEN_LIFETIME_MS } from '../limits.js';

const VERSION = 0x01;
const BODY_LENGTH = 1 + 8 + 4 + 8;
const TOKEN_LENGTH = BODY_LENGTH + 32;

/** Who a valid token speaks for. */
export interface DeviceIdentity {
  readonly accountId: number;
  readonly deviceId: number;
}

export class TokenIssuer {
  readonly #provider: CryptoProvider;
  readonly #key: SecretBytes;
  readonly #now: () => number;

  constructor(provider: CryptoProvider, key: SecretBytes, now: () => number) {
    this.#provider = provider;
    this.#key = key;
    this.#now = now;
  }

  /** A token for the device, good for TOKEN_LIFETIME_MS. */
  async issue(device: DeviceIdentity): Promise<{ token: Uint8Array; expiresAt: number }> {
    const expiresAt = this.#now() + TOKEN_LIFETIME_MS;
    const body = new Uint8Array(BODY_LENGTH);
    const view = new DataView(body.buffer);
    view.setUint8(0, VERSION);
    view.setBigUint64(1, BigInt(device.accountId));
    view.setUint32(9, device.deviceId);
    view.setBigUint64(13, BigInt(expiresAt));
    const mac = await this.#provider.hmacSha256(this.#key, body);
    const token = new Uint8Array(TOKEN_LENGTH);
    token.set(body);
    token.set(mac, BODY_LENGTH);
    return { token, expiresAt };
  }

  /** The device a token speaks for, or undefined if it is malformed, forged or expired. */
  async verify(token: Uint8Array): Promise<DeviceIdentity | undefined> {
    if (token.length !== TOKEN_LENGTH || token[0] !== VERSION) return undefined;
    const body = token.subarray(0, BODY_LENGTH);
    const mac = await this.#provider.hmacSha256(this.#key, body);
    if (!constantTimeEqual(mac, token.subarray(BODY_LENGTH))) return undefined;
    const view = new DataView(token.buffer, token.byteOffset, BODY_LENGTH);
    if (Number(view.getBigUint64(13)) <= this.#now()) return undefined;
    return { accountId: Number(view.getBigUint64(1)), deviceId: view.getUint32(9) };
  }
}
