/**
 * The SDK's debug log, for operators and bug reports. It is off unless the
 * platform brings a `log` sink.
 *
 * It is safe by construction. A line is one of the events declared in
 * `LogEvents`, and the type system refuses any other. Fields hold only
 * numbers, booleans, and strings of known meaning: states, kinds, error
 * codes, and addresses (`username.deviceId`, metadata the server has anyway).
 * A field cannot hold a `Uint8Array`, a key object or a message, so no secret
 * reaches the sink by accident. Nor does free text: errors are logged by their
 * code, never by their message, which may quote what a server said.
 *
 * Never logged: plaintexts, keys, tokens, link and join codes, safety
 * numbers, group ids and titles.
 */
import type { ClientEvents } from './context.js';
import type { Events } from './events.js';
import type { ConnectionState } from './transport.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A field's value: a scalar, never bytes or an object. */
export type LogValue = string | number | boolean;

/**
 * Where the log goes: the app's choice (the CLI writes JSON lines to stderr).
 * It is called synchronously; whatever it throws is ignored.
 */
export type LogSink = (level: LogLevel, event: string, fields: Readonly<Record<string, LogValue>>) => void;

/** Every event the SDK logs, with its fields. */
export interface LogEvents {
  /** `attempt`: connection attempts since the last one that succeeded. */
  'connection.state': { state: ConnectionState; attempt: number };
  /** The WebSocket closed with this code (docs/API.md §5.8). */
  'connection.closed': { code: number };
  'connection.retry': { attempt: number; delayMs: number };
  /** Fetching a login token failed; the connection is retried, or given up for good if the device was removed. */
  'login.failed': { code: string; final: boolean };
  /** A frame this device sent: its kind and size, never its contents. */
  'frame.sent': { kind: string; bytes: number };
  /** A WebSocket message from the server: its size and how many frames of each kind (`envelope:3,drained:1`). */
  'frames.received': { bytes: number; kinds: string };
  'frames.undecodable': { bytes: number };
  /** `type`: the envelope's message type (2 whisper, 3 prekey, 7 sender key…); `bytes`: its body's size. */
  'envelope.processed': { id: number; from: string; type: number; bytes: number };
  /** Processing failed; the envelope comes again on a new connection. */
  'envelope.failed': { id: number; from: string; code: string; attempts: number };
  /** An envelope that can never be processed was dropped, with a notice. */
  'envelope.dropped': { id: number; from: string; code: string; attempts: number };
  'mailbox.drained': { count: number };
  /** A session started from a fetched bundle, with the device at `address`. */
  'session.started': { address: string; oneTimePreKey: boolean };
  'send.stored': { recipients: number; devices: number };
  'send.refused': { code: string; attempt: number };
  'identity.changed': { username: string; wasVerified: boolean };
  /** This account's signed device list changed. */
  'devices.changed': { version: number; devices: number };
  'prekeys.refilled': { firstId: number; nextId: number };
  'prekeys.rotated': { signedPreKeyId: number };
  /** This device shows a link or join code (the code itself is never logged). */
  'link.started': { role: 'existing' | 'new' };
  'link.completed': { role: 'existing' | 'new'; deviceId: number };
  'device.unlinked': { deviceId: number };
  /** A roster change applied here, made on this device or received: `kind` is create, add, remove, promote, demote, title or leave. */
  'group.changed': { kind: string; version: number; members: number; member: boolean };
  'group.alert': { reason: string };
  /** The `warning` event, by the code of its cause. */
  warning: { code: string };
}

/** The code of an error (ClientError, ProtocolError, CryptoError, a Node system error), else its class name: never its message. */
export function errorCode(error: unknown): string {
  if (typeof error !== 'object' || error === null) return 'unknown';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code)) return code;
  return error instanceof Error ? error.name : 'unknown';
}

/** How many of each: `['envelope', 'envelope', 'drained']` → `envelope:2,drained:1`. */
export function tally(kinds: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return [...counts].map(([kind, count]) => `${kind}:${count}`).join(',');
}

/** The SDK's side of the log: typed events, handed to the sink if there is one. */
export class Logger {
  readonly #sink: LogSink | undefined;

  constructor(sink?: LogSink) {
    this.#sink = sink;
  }

  /** Whether anything is logged: fields that cost work to build are built only then. */
  get enabled(): boolean {
    return this.#sink !== undefined;
  }

  debug<K extends keyof LogEvents>(event: K, fields: LogEvents[K]): void {
    this.#write('debug', event, fields);
  }

  info<K extends keyof LogEvents>(event: K, fields: LogEvents[K]): void {
    this.#write('info', event, fields);
  }

  warn<K extends keyof LogEvents>(event: K, fields: LogEvents[K]): void {
    this.#write('warn', event, fields);
  }

  #write<K extends keyof LogEvents>(level: LogLevel, event: K, fields: LogEvents[K]): void {
    if (this.#sink === undefined) return;
    try {
      this.#sink(level, event, fields);
    } catch {
      // A broken sink must not break the client.
    }
  }
}

/** Logs those of a client's own events an operator needs, by their non-secret fields. */
export function logClientEvents(events: Events<ClientEvents>, log: Logger): void {
  events.on('identityChange', ({ username, wasVerified }) => {
    log.warn('identity.changed', { username, wasVerified });
  });
  events.on('devices', ({ version, deviceIds }) => {
    log.info('devices.changed', { version, devices: deviceIds.length });
  });
  events.on('groupAlert', ({ reason }) => {
    log.warn('group.alert', { reason });
  });
  events.on('warning', ({ cause }) => {
    log.warn('warning', { code: cause === undefined ? 'none' : errorCode(cause) });
  });
  events.on('drained', ({ count }) => {
    log.info('mailbox.drained', { count });
  });
}
