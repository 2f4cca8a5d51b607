/**
 * What the page and its worker say to each other. The SDK, its keys and its
 * crypto live in the worker (worker/parley.worker.ts), so that encrypting,
 * decrypting and key generation never block typing; the page asks for
 * operations by name and listens to the client's events.
 */
import type { ClientErrorCode, ClientEvents } from '@parley/client';

import type { WorkerApi } from './api.js';

/** The page asks the worker to run `method` with `args`. */
export interface Request {
  readonly id: number;
  readonly method: keyof WorkerApi;
  readonly args: readonly unknown[];
}

/** A failure as it crosses to the page: a ClientError's code, or UNEXPECTED for a bug. */
export interface Failure {
  readonly code: ClientErrorCode | 'UNEXPECTED';
  readonly message: string;
}

/** The worker's answer to request `id`. */
export type Response = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: Failure };

/** This device, once the worker holds an account. */
export interface Session {
  readonly username: string;
  readonly deviceId: number;
}

/** The client's events the page hears (its `warning` made plain data), and the worker's own. */
export interface PageEvents {
  message: ClientEvents['message'];
  status: ClientEvents['status'];
  typing: ClientEvents['typing'];
  identityChange: ClientEvents['identityChange'];
  devices: ClientEvents['devices'];
  connection: ClientEvents['connection'];
  drained: ClientEvents['drained'];
  group: ClientEvents['group'];
  groupAlert: ClientEvents['groupAlert'];
  /** Something went wrong in the background; the client carries on. */
  warning: { readonly message: string };
  /** An account is open: created, opened from IndexedDB, or joined by linking. */
  session: Session;
  /** A device this one offered a link to joined the account. */
  deviceLinked: { readonly deviceId: number };
  /** Linking (either side) failed or was cancelled. */
  linkFailed: Failure;
}

/** An event crossing to the page. */
export interface EventMessage<K extends keyof PageEvents = keyof PageEvents> {
  readonly event: K;
  readonly value: PageEvents[K];
}

export type WorkerMessage = Response | EventMessage;
