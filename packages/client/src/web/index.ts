/**
 * The browser platform for `@parley/client`: WebCrypto with @noble where it
 * has no primitive, an IndexedDB profile, and the browser's WebSocket.
 */
import { createWebProvider } from '@parley/crypto/web';

import type { Platform } from '../client.js';
import type { WebSocketLike } from '../transport.js';
import { IndexedDbStore } from './indexedDbStore.js';

export { IndexedDbStore };

/** The browser's platform, with its store in the IndexedDB database `profile`. */
export async function webPlatform(profile = 'parley', options: Partial<Omit<Platform, 'store'>> = {}): Promise<Platform> {
  return {
    provider: options.provider ?? createWebProvider(),
    store: await IndexedDbStore.open(profile),
    webSocket: options.webSocket ?? ((url) => new WebSocket(url) as unknown as WebSocketLike),
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    ...(options.log === undefined ? {} : { log: options.log }),
  };
}
