/**
 * The Node platform for `@parley/client`: node:crypto, a SQLite profile, and
 * the `ws` WebSocket.
 */
import { join } from 'node:path';

import { createNodeProvider } from '@parley/crypto/node';
import WebSocket from 'ws';

import type { Platform } from '../client.js';
import type { WebSocketLike } from '../transport.js';
import { SqliteStore } from './sqliteStore.js';

export { SqliteStore };

/** A profile's database file inside its folder. */
export const PROFILE_DATABASE = 'parley.db';

/** Node's platform, with its store in `profileDir` (created with mode 0700). */
export function nodePlatform(profileDir: string, options: Partial<Omit<Platform, 'store'>> = {}): Platform {
  return {
    provider: options.provider ?? createNodeProvider(),
    store: new SqliteStore(join(profileDir, PROFILE_DATABASE)),
    webSocket: options.webSocket ?? ((url) => new WebSocket(url, { perMessageDeflate: false }) as unknown as WebSocketLike),
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    ...(options.log === undefined ? {} : { log: options.log }),
  };
}
