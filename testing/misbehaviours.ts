/**
 * Ready-made misbehaviours for the malicious-server test double
 * (maliciousServer.ts): hooks that drop, duplicate, replay, reorder and
 * rewrite envelopes, forge device-set refusals, and rewrite device lists and
 * bundles (an injected device, a swapped identity key, an old list served
 * again), for everyone or for one person only.
 */
import { xeddsaSign } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import {
  decodeDeviceList,
  encodeDeviceList,
  signDeviceList,
  type ClientFrame,
  type DeviceEntry,
  type DeviceMismatch,
  type Envelope,
  type IdentityKeyPair,
  type ServerFrame,
} from '@parley/protocol';

import {
  forgedEnvelopeId,
  type ClientFrameHook,
  type Connection,
  type FrameHook,
  type HttpExchange,
  type HttpHook,
  type ServerFrameHook,
  type Verdict,
} from './maliciousServer.js';

const provider = createNodeProvider();
const fromB64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
const toB64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** Which envelopes a frame misbehaviour applies to; by default, every one. */
export type EnvelopeMatch = (envelope: Envelope, connection: Connection) => boolean;
const everyEnvelope: EnvelopeMatch = () => true;

/** Runs frame hooks one after another, each on what the one before let through. */
export function chain<F>(...hooks: readonly FrameHook<F>[]): FrameHook<F> {
  return async (frame, connection) => {
    let frames: readonly F[] = [frame];
    for (const hook of hooks) {
      const next: F[] = [];
      for (const f of frames) next.push(...((await hook(f, connection)) ?? [f]));
      frames = next;
    }
    return frames;
  };
}

const envelopeFrame = (envelope: Envelope): ServerFrame => ({ kind: 'envelope', envelope });

/** A hook on the envelopes `match` accepts; every other frame passes. */
function onEnvelopes(match: EnvelopeMatch, act: (envelope: Envelope, connection: Connection) => Verdict<ServerFrame>): ServerFrameHook {
  return (frame, connection) => (frame.kind === 'envelope' && match(frame.envelope, connection) ? act(frame.envelope, connection) : undefined);
}

/** Never delivers the matching envelopes (the server still holds them, unacknowledged, and pushes them again on the next connection). */
export function dropEnvelopes(match: EnvelopeMatch = everyEnvelope): ServerFrameHook {
  return onEnvelopes(match, () => []);
}

/** Delivers each matching envelope twice in a row, same id: what at-least-once delivery may do after a reconnect. */
export function duplicateEnvelopes(match: EnvelopeMatch = everyEnvelope): ServerFrameHook {
  return onEnvelopes(match, (e) => [envelopeFrame(e), envelopeFrame(e)]);
}

/**
 * Delivers the first matching envelope, then the same envelope again under a
 * fresh id (see {@link forgedEnvelopeId}): a server replaying a stored
 * message, which the client's check of envelope ids cannot catch.
 */
export function replayEnvelope(match: EnvelopeMatch = everyEnvelope): ServerFrameHook {
  let done = false;
  return onEnvelopes(
    (e, c) => !done && match(e, c),
    (e) => {
      done = true;
      return [envelopeFrame(e), envelopeFrame({ ...e, id: forgedEnvelopeId() })];
    },
  );
}

/** Rewrites the matching envelopes (their `type`, `source`, `sourceDevice`, `body`…). */
export function rewriteEnvelope(match: EnvelopeMatch, rewrite: (envelope: Envelope) => Envelope): ServerFrameHook {
  return onEnvelopes(match, (e) => [envelopeFrame(rewrite(e))]);
}

/**
 * Reverses the order of each `count` matching envelopes of a connection: holds
 * them until `count` have come, then delivers them last first. A batch that
 * has not filled within `holdMs` is delivered as it is, in order.
 */
export function reorder(count = 2, match: EnvelopeMatch = everyEnvelope, holdMs = 2_000): ServerFrameHook {
  const held = new WeakMap<Connection, { envelopes: Envelope[]; timer: NodeJS.Timeout }>();
  return onEnvelopes(match, (e, connection) => {
    const batch = held.get(connection) ?? {
      envelopes: [],
      timer: setTimeout(() => {
        held.delete(connection);
        connection.toClient(...batch.envelopes.map(envelopeFrame));
      }, holdMs),
    };
    held.set(connection, batch);
    batch.envelopes.push(e);
    if (batch.envelopes.length < count) return [];
    clearTimeout(batch.timer);
    held.delete(connection);
    return batch.envelopes.reverse().map(envelopeFrame);
  });
}

/**
 * Answers client sends (and multicasts) with a forged `DEVICE_MISMATCH`
 * refusal instead of forwarding them: the server's way to ask for copies to a
 * ghost device (`missing`), or to make the client drop sessions (`extra`,
 * `stale`), perhaps of an account the send did not name. Applies to sends from
 * the account `from` (default: every sender), at most `times` times (default: always).
 */
export function refuseWithMismatch(
  mismatches: readonly DeviceMismatch[] | ((send: ClientFrame) => readonly DeviceMismatch[]),
  options: { readonly from?: string; readonly times?: number } = {},
): ClientFrameHook {
  let left = options.times ?? Infinity;
  return (frame, connection) => {
    if (frame.kind === 'auth' || frame.kind === 'ack') return undefined;
    if (left <= 0 || (options.from !== undefined && connection.device?.username !== options.from)) return undefined;
    left -= 1;
    const named = typeof mismatches === 'function' ? mismatches(frame) : mismatches;
    connection.toClient({ kind: 'refused', requestId: frame.requestId, code: 'DEVICE_MISMATCH', message: 'device mismatch', mismatches: named });
    return [];
  };
}

/** An account answer (`GET /v1/accounts/:username`) or bundle answer (`GET /v1/keys/:username/:id`), as JSON. */
interface AccountJson {
  readonly username: string;
  readonly identityKey: string;
  readonly deviceList: { readonly list: string; readonly signature: string };
  readonly devices?: readonly BundleJson[];
}
interface BundleJson {
  readonly deviceId: number;
  readonly registrationId: number;
  readonly signedPreKey: { readonly keyId: number; readonly publicKey: string; readonly signature: string };
  readonly preKey?: { readonly keyId: number; readonly publicKey: string };
  readonly kyberPreKey: { readonly keyId: number; readonly publicKey: string; readonly signature: string };
}

/** The exchange's body if it is a successful account or bundle answer about `username`. */
function accountAnswer(exchange: HttpExchange, username: string): AccountJson | undefined {
  if (exchange.method !== 'GET' || exchange.status !== 200 || !/^\/v1\/(?:accounts|keys)\/[^/]+/.test(exchange.path)) return undefined;
  if (typeof exchange.body !== 'object' || exchange.body === null) return undefined;
  const body = exchange.body as Partial<AccountJson>;
  return body.username === username && typeof body.deviceList === 'object' ? (body as AccountJson) : undefined;
}

/**
 * Adds a device the identity key never signed to `username`'s device list in
 * account and bundle answers: the list gets the fake device and the next
 * version, and keeps its old signature, which no longer verifies. A `*` bundle
 * answer also gets keys for the fake device (copies of the first device's).
 * The fake's auth key defaults to the first listed device's.
 */
export function injectDeviceIntoList(
  username: string,
  fake: { readonly deviceId: number; readonly registrationId?: number; readonly authKey?: Uint8Array },
): HttpHook {
  return (exchange) => {
    const answer = accountAnswer(exchange, username);
    if (answer === undefined) return undefined;
    const list = decodeDeviceList(fromB64(answer.deviceList.list));
    const ghost: DeviceEntry = {
      deviceId: fake.deviceId,
      registrationId: fake.registrationId ?? 1234,
      authKey: fake.authKey ?? list.devices[0]!.authKey,
    };
    const forged = encodeDeviceList({ ...list, version: list.version + 1, devices: [...list.devices.filter((d) => d.deviceId !== ghost.deviceId), ghost] });
    const first = answer.devices?.[0];
    const devices =
      answer.devices === undefined || first === undefined || !exchange.path.endsWith('/*')
        ? answer.devices
        : [...answer.devices, { ...first, deviceId: ghost.deviceId, registrationId: ghost.registrationId }];
    return { ...answer, deviceList: { ...answer.deviceList, list: toB64(forged) }, ...(devices === undefined ? {} : { devices }) };
  };
}

/**
 * Serves `key` as `username`'s identity key in account and bundle answers.
 * With a public key alone, the device list and prekeys keep their signatures
 * by the real key, which then do not verify. With a whole key pair (the
 * server's own), the server signs them anew: the device list and every
 * bundle's signed and Kyber prekeys verify under the swapped key, as a real
 * key-substitution attack would serve them.
 */
export function swapIdentityKey(username: string, key: Uint8Array | IdentityKeyPair): HttpHook {
  return async (exchange) => {
    const answer = accountAnswer(exchange, username);
    if (answer === undefined) return undefined;
    if (key instanceof Uint8Array) return { ...answer, identityKey: toB64(key) };
    const signed = await signDeviceList(provider, key, decodeDeviceList(fromB64(answer.deviceList.list)));
    const sign = async (publicKey: string) => toB64(await xeddsaSign(provider, key.privateKey, fromB64(publicKey)));
    const devices =
      answer.devices === undefined
        ? undefined
        : await Promise.all(
            answer.devices.map(async (d) => ({
              ...d,
              signedPreKey: { ...d.signedPreKey, signature: await sign(d.signedPreKey.publicKey) },
              kyberPreKey: { ...d.kyberPreKey, signature: await sign(d.kyberPreKey.publicKey) },
            })),
          );
    return {
      ...answer,
      identityKey: toB64(key.publicKey),
      deviceList: { list: toB64(signed.list), signature: toB64(signed.signature) },
      ...(devices === undefined ? {} : { devices }),
    };
  };
}

/** Applies `hook` only to what `username`'s devices ask: a server showing one person something else than everyone else sees. */
export function onlyFor(username: string, hook: HttpHook): HttpHook {
  return (exchange) => (exchange.requester?.username === username ? hook(exchange) : undefined);
}

/**
 * Remembers every version of `username`'s device list that passes through
 * `record` (which changes nothing), so that `replay(version)` can serve that
 * version again in account and bundle answers: a server rolling a device list
 * back (bringing a removed device back), or hiding a device by serving the
 * list from before it was linked. The old list is validly signed; only its
 * version can give it away.
 */
export function deviceListHistory(username: string): { readonly record: HttpHook; replay(version: number): HttpHook } {
  const served = new Map<number, AccountJson['deviceList']>();
  return {
    record: (exchange) => {
      const answer = accountAnswer(exchange, username);
      if (answer !== undefined) served.set(decodeDeviceList(fromB64(answer.deviceList.list)).version, answer.deviceList);
      return undefined;
    },
    replay: (version) => {
      const deviceList = served.get(version);
      if (deviceList === undefined) throw new Error(`version ${version} of ${username}'s device list never passed through the proxy`);
      return (exchange) => {
        const answer = accountAnswer(exchange, username);
        return answer === undefined ? undefined : { ...answer, deviceList };
      };
    },
  };
}

/**
 * Tampers with the one-time prekeys in `username`'s bundle answers: `reuse`
 * serves the first one handed out to every later fetch as well (a server
 * replaying a used key), `withhold` serves none (a server draining or hiding
 * them). Signed and Kyber prekeys pass unchanged.
 */
export function tamperOneTimePreKeys(username: string, mode: 'reuse' | 'withhold'): HttpHook {
  let first: BundleJson['preKey'];
  return (exchange) => {
    const answer = accountAnswer(exchange, username);
    if (answer?.devices === undefined) return undefined;
    const devices = answer.devices.map(({ preKey, ...device }) => {
      if (mode === 'withhold') return device;
      first ??= preKey;
      return first === undefined ? device : { ...device, preKey: first };
    });
    return { ...answer, devices };
  };
}
