/**
 * The client address of an HTTP request or WebSocket upgrade, used only as a
 * rate-limit key: never logged (unless `--log-ips`, for HTTP requests), never
 * stored. Fastify works out `request.ip` for HTTP routes; upgrades never reach
 * Fastify, so this applies the same rule, with the same library
 * (`@fastify/proxy-addr`) and the same reading of `--trust-proxy`, to the raw
 * request: without trusted proxies, the TCP peer; with them, the rightmost
 * X-Forwarded-For entry not added by one of them.
 */
import type { IncomingMessage } from 'node:http';

import proxyAddr from '@fastify/proxy-addr';

/**
 * A function from a raw request to its client address.
 * @param trustProxy comma-separated proxy addresses or CIDRs, as `ServerConfig.trustProxy`.
 */
export function clientAddressOf(trustProxy: string | undefined): (request: IncomingMessage) => string {
  if (trustProxy === undefined) return (request) => request.socket.remoteAddress ?? '';
  // As Fastify reads a string trustProxy (fastify/lib/request.js): split on commas, trimmed.
  const trusted = proxyAddr.compile(trustProxy.split(',').map((entry) => entry.trim()));
  return (request) => proxyAddr(request, trusted);
}
