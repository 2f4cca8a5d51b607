/**
 * The client address of a WebSocket upgrade is the one Fastify gives HTTP
 * routes as `request.ip`, for the same `--trust-proxy` setting: checked
 * against Fastify itself, case by case.
 */
import type { IncomingMessage } from 'node:http';

import { fastify } from 'fastify';
import { describe, expect, it } from 'vitest';

import { clientAddressOf } from './clientAddress.js';

/** [trusted proxies, TCP peer, X-Forwarded-For, the client address]. */
const cases: readonly (readonly [string | undefined, string, string | undefined, string])[] = [
  [undefined, '127.0.0.1', undefined, '127.0.0.1'],
  [undefined, '127.0.0.1', '198.18.0.1', '127.0.0.1'],
  ['127.0.0.1', '127.0.0.1', undefined, '127.0.0.1'],
  ['127.0.0.1', '127.0.0.1', '198.18.0.1', '198.18.0.1'],
  ['127.0.0.1', '127.0.0.1', '203.0.113.7, 198.18.0.1', '198.18.0.1'],
  ['127.0.0.1', '127.0.0.1', '198.18.0.1, 127.0.0.1', '198.18.0.1'],
  ['127.0.0.1', '192.0.2.1', '198.18.0.1', '192.0.2.1'],
  ['10.0.0.0/8, ::1', '::1', '198.18.0.1, 10.1.2.3', '198.18.0.1'],
  ['10.0.0.0/8,::1', '10.9.9.9', '2001:db8::1', '2001:db8::1'],
  ['127.0.0.1', '127.0.0.1', 'not-an-address', 'not-an-address'],
];

describe('clientAddressOf', () => {
  it.each(cases)('trusting %s, peer %s, X-Forwarded-For %s: %s', async (trustProxy, peer, forwardedFor, expected) => {
    const request = {
      socket: { remoteAddress: peer },
      headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    } as unknown as IncomingMessage;
    expect(clientAddressOf(trustProxy)(request)).toBe(expected);

    const app = fastify(trustProxy === undefined ? {} : { trustProxy });
    app.get('/', (req) => ({ ip: req.ip }));
    const response = await app.inject({
      method: 'GET',
      url: '/',
      remoteAddress: peer,
      headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    });
    expect(response.json<{ ip: string }>().ip).toBe(expected);
    await app.close();
  });
});
