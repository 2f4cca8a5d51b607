/**
 * A fuzz target for the client's reading of the server's answers, which a
 * malicious server writes: a stand-in server in this process answers a
 * bundle fetch (the richest answer: account, device list, every key kind)
 * with each input, and `ServerApi.bundles` must take it or refuse it with
 * ClientError `BAD_RESPONSE`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { serializePublicKey } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';
import { generateIdentityKeyPair, generateKyberPreKey, generatePreKeys, generateSignedPreKey } from '@parley/protocol';

import { ServerApi } from '../../../packages/client/src/api.js';
import { isClientError } from '../../../packages/client/src/errors.js';
import { b64 } from '../../device.js';
import type { FuzzTarget } from '../engine.js';

const provider = createNodeProvider();
/** Each input is a request over loopback: a tenth of a decoder's inputs, and a request's time bound. */
const REQUEST_RUN_SHARE = 0.1;
const REQUEST_HANG_MS = 5_000;

/** Valid bundle answers (docs/API.md §3.10): one device with a one-time prekey, and two devices without. */
async function answers(): Promise<unknown[]> {
  const identity = await generateIdentityKeyPair(provider);
  const signed = await generateSignedPreKey(provider, identity, 1, 0);
  const kyber = await generateKyberPreKey(provider, identity, 1, 0);
  const [preKey] = await generatePreKeys(provider, 5, 1);
  const device = (deviceId: number) => ({
    deviceId,
    registrationId: 4242 + deviceId,
    signedPreKey: { keyId: signed.id, publicKey: b64(serializePublicKey(signed.publicKey)), signature: b64(signed.signature) },
    kyberPreKey: { keyId: kyber.id, publicKey: b64(kyber.publicKey), signature: b64(kyber.signature) },
  });
  const account = { username: 'bob', identityKey: b64(identity.publicKey), deviceList: { list: b64(new Uint8Array(60).fill(1)), signature: b64(new Uint8Array(64).fill(2)) } };
  return [
    { ...account, devices: [{ ...device(1), preKey: { keyId: preKey!.id, publicKey: b64(serializePublicKey(preKey!.publicKey)) } }] },
    { ...account, devices: [device(1), device(2)] },
  ];
}

/** A stand-in server: logs anyone in, and answers everything else with what `answer` holds. */
async function standIn(answer: { body: Uint8Array }): Promise<Server> {
  const server = createServer((request, response) => {
    request.resume();
    response.setHeader('content-type', 'application/json');
    if (request.url === '/v1/auth/challenge') response.end(JSON.stringify({ challenge: b64(new Uint8Array(32)) }));
    else if (request.url === '/v1/auth/token') response.end(JSON.stringify({ token: 'token', expiresAt: Number.MAX_SAFE_INTEGER }));
    else response.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

export const clientApiTarget: FuzzTarget = {
  name: 'client-bundles-answer',
  title: "the server's answer to a bundle fetch, as the client reads it",
  hangMs: REQUEST_HANG_MS,
  runShare: REQUEST_RUN_SHARE,
  async open() {
    const answer: { body: Uint8Array } = { body: new Uint8Array(0) };
    const server = await standIn(answer);
    const api = new ServerApi(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, provider);
    api.signInAs({ username: 'alice', deviceId: 1, auth: await generateIdentityKeyPair(provider) });
    return {
      seeds: (await answers()).map((a) => new TextEncoder().encode(JSON.stringify(a))),
      decode: (input) => {
        answer.body = input;
        return api.bundles('bob', '*');
      },
      isTypedError: (error) => isClientError(error, 'BAD_RESPONSE'),
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
        }),
    };
  },
};
