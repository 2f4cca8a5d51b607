/**
 * The worker that holds this browser's Parley device: its keys, its sessions
 * and its connection. It answers the page's requests (messages.ts) with
 * api.ts, and passes the client's events on.
 *
 * One tab at a time may hold the profile: two clients on one device would
 * race over its sessions. A Web Lock held for the worker's life says which.
 */
import { ClientError, type Platform } from '@parley/client';
import { webPlatform } from '@parley/client/web';

import { failure, workerApi, type Host } from './api.js';
import type { PageEvents, Request, WorkerMessage } from './messages.js';

/** The dedicated worker's scope, as far as this file uses it (the project's types are the window's). */
const scope = globalThis as unknown as {
  postMessage(message: WorkerMessage): void;
  onmessage: ((event: MessageEvent<Request>) => void) | null;
  location: { origin: string };
  navigator: { locks?: LockManager };
};

/** How long a new tab waits for the profile: a reloaded or closed tab's worker lets go of it a moment after. */
const LOCK_WAIT_MS = 3_000;

/** Held until the worker ends; resolves false if another tab keeps the profile. */
function holdProfileLock(): Promise<boolean> {
  const locks = scope.navigator.locks;
  if (locks === undefined) return Promise.resolve(true); // an old browser: nothing to coordinate with
  return new Promise((resolve) => {
    locks
      .request('parley-profile', { signal: AbortSignal.timeout(LOCK_WAIT_MS) }, () => {
        resolve(true);
        return new Promise<never>(() => undefined);
      })
      .catch(() => { resolve(false); });
  });
}

let platform: Promise<Platform> | undefined;

const host: Host = {
  serverUrl: scope.location.origin,
  platform() {
    platform ??= holdProfileLock().then((held) => {
      if (!held) throw new ClientError('PROFILE_IN_USE', 'Parley is open in another tab of this browser; use that one, or close it and reload');
      return webPlatform('parley');
    });
    platform.catch(() => { platform = undefined; }); // a refused lock may be free on the next try
    return platform;
  },
  emit<K extends keyof PageEvents>(event: K, value: PageEvents[K]) {
    scope.postMessage({ event, value });
  },
};

const api = workerApi(host);

scope.onmessage = (event) => {
  const { id, method, args } = event.data;
  (api[method] as (...a: unknown[]) => Promise<unknown>).apply(api, [...args]).then(
    (value) => { scope.postMessage({ id, ok: true, value }); },
    (error: unknown) => { scope.postMessage({ id, ok: false, error: failure(error) }); },
  );
};
