/**
 * The world of the whole-stack model test (model.test.ts): a real
 * `parley-server` process behind the malicious-server proxy, and three people
 * with two real devices each (SQLite profiles; the second device linked). The
 * test drives it with random schedules; this module does what each step means
 * and keeps the model: which texts were sent, by which device to whom, which
 * the server acknowledged, and which a device restored from a snapshot may
 * have lost.
 *
 * At the end of a schedule, `heal` undoes every fault (held envelopes go
 * through, every device reconnects so that dropped ones come again) and waits,
 * with a deadline, until the stack is quiet; `check` then compares what every
 * device shows with what the model says it must.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import SQLite from 'better-sqlite3';
import pg from 'pg';

import type { ParleyClient, StoredMessage } from '@parley/client';
import type { Envelope } from '@parley/protocol';

import { Cast, type Profile } from './clients.js';
import { startMaliciousServer, type Connection, type DeviceName, type MaliciousServer, type ServerFrameHook } from './maliciousServer.js';
import { freshStorage, spawnServer, type EngineName, type ServerProcess, type Storage } from './server.js';

/**
 * How long healing may take: every held, dropped and undecryptable message
 * through, and the server's mailboxes empty. A healthy stack heals within a
 * few seconds; a failing one costs this much per run, shrinking included.
 */
export const HEAL_MS = 20_000;
/** How long a `settle` step waits for the devices the proxy passes to empty their mailboxes. */
const SETTLE_MS = 5_000;
/** The stack counts as quiet when it stays so across polls this far apart. */
const QUIET_POLL_MS = 250;
/** Every run links three devices from one address: the relay's per-address limit must not refuse them. */
const SERVER_ARGS = ['--links', '1000000'];

export const PEOPLE = ['alice', 'bob', 'carol'] as const;
export type Person = 0 | 1 | 2;
/** A device: 0 and 1 are alice's devices 1 and 2, 2 and 3 bob's, 4 and 5 carol's. */
export type DeviceIndex = 0 | 1 | 2 | 3 | 4 | 5;
export const DEVICES: readonly DeviceIndex[] = [0, 1, 2, 3, 4, 5];
/**
 * The devices that are snapshotted and restored: alice's first device and
 * bob's linked one. Each has a snapshot from the start (no session yet), so
 * that a restore always has one to go back to.
 */
export const RESTORABLE: readonly DeviceIndex[] = [0, 3];

export const personOf = (device: DeviceIndex): Person => Math.floor(device / 2) as Person;
export const deviceIdOf = (device: DeviceIndex): number => (device % 2) + 1;
/** `a1`, `b2`…: how schedules name devices. */
export const label = (device: DeviceIndex): string => `${PEOPLE[personOf(device)][0]!}${deviceIdOf(device)}`;

/** The real server and the proxy in front of it, shared by the runs of a test file; the server can crash and come back. */
export class Stack {
  readonly mailroom = new Mailroom();

  private constructor(
    readonly storage: Storage,
    private server: ServerProcess,
    readonly proxy: MaliciousServer,
  ) {
    proxy.onServerFrame(this.mailroom.hook);
  }

  static async start(engine: EngineName): Promise<Stack> {
    const storage = await freshStorage(engine);
    const server = await spawnServer(storage, SERVER_ARGS);
    return new Stack(storage, server, await startMaliciousServer(server.url));
  }

  /** SIGKILL, then a new process on the same storage and port (the proxy knows that address). */
  async restartServer(): Promise<void> {
    await this.server.kill();
    this.server = await spawnServer(this.storage, [...SERVER_ARGS, '--port', new URL(this.server.url).port]);
  }

  /** Envelopes the server still holds for `devices` (stored, not yet acknowledged). */
  async pendingEnvelopes(devices: readonly DeviceName[]): Promise<number> {
    const where = devices.map(() => '(a.username = ? and e.device_id = ?)').join(' or ');
    const query = `select count(*) as n from envelopes e join accounts a on a.id = e.account_id where ${where}`;
    const values = devices.flatMap((d) => [d.username, d.deviceId]);
    if (this.storage.engine === 'sqlite') {
      const db = new SQLite(join(this.storage.args[1]!, 'parley.sqlite'), { readonly: true });
      try {
        return (db.prepare(query).get(...values) as { n: number }).n;
      } finally {
        db.close();
      }
    }
    const client = new pg.Client({ connectionString: this.storage.url });
    await client.connect();
    try {
      let n = 0;
      const numbered = query.replace(/\?/g, () => `$${++n}`);
      return Number((await client.query<{ n: string }>(numbered, values)).rows[0]!.n);
    } finally {
      await client.end();
    }
  }

  /** The server goes first: its sockets closing end the proxy's tunnels (a link left pending keeps one open). */
  async close(): Promise<void> {
    await this.server.stop();
    await this.proxy.close();
    await this.storage.drop();
  }
}

const deviceKey = (device: DeviceName) => `${device.username}.${device.deviceId}`;

/**
 * The proxy's hand on envelopes going to each device. A held device's
 * envelopes wait in the proxy (the server has pushed them, and waits for an
 * acknowledgement) until `deliver` lets them through, in order or reversed. A
 * dropping device's envelopes, and what was held for it, are thrown away: the
 * server pushes them again only on the device's next connection.
 */
export class Mailroom {
  readonly #held = new Map<string, { connection: Connection; envelope: Envelope }[]>();
  readonly #dropping = new Set<string>();

  readonly hook: ServerFrameHook = (frame, connection) => {
    if (frame.kind !== 'envelope' || connection.device === undefined) return undefined;
    const key = deviceKey(connection.device);
    if (this.#dropping.has(key)) return [];
    const held = this.#held.get(key);
    if (held === undefined) return undefined;
    held.push({ connection, envelope: frame.envelope });
    return [];
  };

  /** Whether envelopes to the device go through (it is neither held nor dropping). */
  passes(device: DeviceName): boolean {
    return !this.#held.has(deviceKey(device)) && !this.#dropping.has(deviceKey(device));
  }

  hold(device: DeviceName): void {
    this.#dropping.delete(deviceKey(device));
    if (!this.#held.has(deviceKey(device))) this.#held.set(deviceKey(device), []);
  }

  /** Lets what was held through, on the connection it came for (a connection gone since gets it again from the server anyway), and what comes next. */
  deliver(device: DeviceName, order: 'in order' | 'reversed'): void {
    this.#dropping.delete(deviceKey(device));
    const held = this.#take(device);
    if (order === 'reversed') held.reverse();
    for (const { connection, envelope } of held) connection.toClient({ kind: 'envelope', envelope });
  }

  drop(device: DeviceName): void {
    this.#take(device);
    this.#dropping.add(deviceKey(device));
  }

  #take(device: DeviceName): { connection: Connection; envelope: Envelope }[] {
    const held = this.#held.get(deviceKey(device)) ?? [];
    this.#held.delete(deviceKey(device));
    return held;
  }
}

/** A text sent in a schedule, and what became of the send. */
interface Sent {
  readonly text: string;
  readonly from: DeviceIndex;
  readonly to: Person;
  /** `sending` until sendText settles: `acknowledged` once it resolved (the server stored it), else `failed`. */
  outcome: 'sending' | 'acknowledged' | 'failed';
  /** Why it failed. */
  error?: string;
}

/** One device as the world holds it: its profile folder outlives its clients, and a snapshot is a copy of that folder. */
interface Device {
  readonly profile: Profile;
  client: ParleyClient;
  /** The snapshot's folder, and the texts the device showed when it was taken. */
  snapshot?: { readonly dir: string; readonly texts: ReadonlySet<string> };
  /** Texts this device may lack: restored from a snapshot taken before they came (or were sent), it shows each at most once. */
  readonly mayLack: Set<string>;
}

/** What one device shows: its texts and notices with the other two people. */
interface Shown {
  readonly texts: StoredMessage[];
  readonly notices: StoredMessage[];
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `what` if `promise` has not settled within `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { reject(new Error(`not within ${ms} ms: ${what}`)); }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class World {
  readonly #sent: Sent[] = [];
  readonly #sending = new Set<Promise<unknown>>();
  /** Envelopes some device could not decrypt (the recovery path at work). */
  decryptionFailures = 0;
  /**
   * A device was restored from a snapshot. From then on undecryptable
   * envelopes may stay: a receipt (or any content but a text) sent in a
   * session the restore made stale fails, and its sender keeps nothing to
   * send again (recovery.ts resends texts only). Texts must still all arrive.
   */
  #restored = false;

  private constructor(
    readonly stack: Stack,
    readonly cast: Cast,
    readonly devices: readonly Device[],
  ) {
    for (const d of devices) this.#watch(d.client);
  }

  #watch(client: ParleyClient): void {
    client.events.on('warning', ({ message }) => {
      if (message.includes('could not be decrypted')) this.decryptionFailures++;
    });
  }

  /** Three new accounts on the proxy, each with a first device and a second one linked through its link code, all online. */
  static async create(stack: Stack): Promise<World> {
    const cast = new Cast(() => stack.proxy.url);
    const devices: Device[] = [];
    const add = (client: ParleyClient) => devices.push({ profile: cast.profiles.at(-1)!, client, mayLack: new Set() });
    try {
      for (const name of PEOPLE) {
        const first = await cast.person(name);
        add(first);
        add(await cast.linkTo(first));
      }
    } catch (error) {
      await cast.close();
      throw error;
    }
    const world = new World(stack, cast, devices);
    for (const device of RESTORABLE) await world.snapshot(device);
    return world;
  }

  usernameOf(person: Person): string {
    return this.devices[person * 2]!.client.username;
  }

  nameOf(device: DeviceIndex): DeviceName {
    return { username: this.usernameOf(personOf(device)), deviceId: deviceIdOf(device) };
  }

  /** Starts sending a new text; the schedule goes on without waiting for the server's answer. */
  send(from: DeviceIndex, to: Person): void {
    const sent: Sent = { text: `m${this.#sent.length + 1} ${label(from)}→${PEOPLE[to]}`, from, to, outcome: 'sending' };
    this.#sent.push(sent);
    const sending = this.devices[from]!.client.sendText(this.usernameOf(to), sent.text).then(
      () => { sent.outcome = 'acknowledged'; },
      (error: unknown) => {
        sent.outcome = 'failed';
        sent.error = error instanceof Error ? error.message : String(error);
      },
    );
    this.#sending.add(sending);
    void sending.finally(() => this.#sending.delete(sending));
  }

  /** Closes the device's proxied connection: the client reconnects, and the server pushes again what it has not acknowledged. */
  reconnect(device: DeviceIndex): void {
    const name = this.nameOf(device);
    for (const c of this.stack.proxy.connections()) {
      if (c.device?.username === name.username && c.device.deviceId === name.deviceId) c.close();
    }
  }

  /** Copies the device's profile (closed meanwhile: a copy of a live SQLite file may be torn), remembering what it showed. */
  async snapshot(device: DeviceIndex): Promise<void> {
    const d = this.devices[device]!;
    const texts = new Set((await this.shown(device)).texts.map((m) => m.body));
    await this.#reopen(d, () => {
      if (d.snapshot !== undefined) rmSync(d.snapshot.dir, { recursive: true, force: true });
      const dir = `${d.profile.dir}.snapshot`;
      cpSync(d.profile.dir, dir, { recursive: true });
      d.snapshot = { dir, texts };
    });
  }

  /**
   * Replaces the device's profile with its snapshot. What it received or sent
   * since the snapshot is gone from it; the rest of the account, and its
   * contacts, have moved on (their sessions with it included).
   */
  async restore(device: DeviceIndex): Promise<void> {
    const d = this.devices[device]!;
    const snapshot = d.snapshot;
    if (snapshot === undefined) throw new Error(`${label(device)} has no snapshot: it is not one of RESTORABLE`);
    for (const sent of this.#sent) if (!snapshot.texts.has(sent.text)) d.mayLack.add(sent.text);
    this.#restored = true;
    await this.#reopen(d, () => {
      rmSync(d.profile.dir, { recursive: true, force: true });
      cpSync(snapshot.dir, d.profile.dir, { recursive: true });
    });
  }

  async #reopen(d: Device, whileClosed: () => void): Promise<void> {
    await d.client.close();
    whileClosed();
    d.client = await d.profile.open();
    this.cast.clients.push(d.client);
    this.#watch(d.client);
    d.client.connect();
  }

  /**
   * Lets the schedule's work finish without undoing its faults: every send
   * settles, and the devices the proxy lets envelopes through to take all the
   * server holds for them. A step, not a check: after SETTLE_MS it gives up
   * quietly (a device restored a moment ago may still be recovering).
   */
  async settle(): Promise<void> {
    const deadline = Date.now() + SETTLE_MS;
    await within(HEAL_MS, `every send settles (${this.#sending.size} pending)`, Promise.all(this.#sending));
    const open = DEVICES.map((device) => this.nameOf(device)).filter((name) => this.stack.mailroom.passes(name));
    while (open.length > 0 && Date.now() < deadline && (await this.stack.pendingEnvelopes(open)) > 0) await wait(QUIET_POLL_MS);
  }

  /**
   * Undoes every fault and waits until the stack is quiet: held envelopes go
   * through, every send settles, every device reconnects (so what was dropped
   * comes again), and then every device shows what it must, nothing is left
   * undecryptable, and the server holds no envelope for these accounts, twice
   * in a row. @throws saying what is still missing after HEAL_MS.
   */
  async heal(): Promise<void> {
    const deadline = Date.now() + HEAL_MS;
    for (const device of DEVICES) this.stack.mailroom.deliver(this.nameOf(device), 'in order');
    await within(HEAL_MS, `every send settles (${this.#sending.size} pending)`, Promise.all(this.#sending));
    for (const device of DEVICES) this.reconnect(device);
    let quietPolls = 0;
    let problems: string[] = [];
    while (quietPolls < 2) {
      if (Date.now() > deadline) throw new Error(`the stack did not heal within ${HEAL_MS} ms:\n  ${problems.join('\n  ')}\nsends: ${this.summary()}`);
      await wait(QUIET_POLL_MS);
      problems = await this.#unhealed();
      quietPolls = problems.length === 0 ? quietPolls + 1 : 0;
    }
  }

  /** What keeps the stack from being healed; nothing once it is. */
  async #unhealed(): Promise<string[]> {
    const problems: string[] = [];
    for (const device of DEVICES) {
      const d = this.devices[device]!;
      if (d.client.connectionState !== 'online') problems.push(`${label(device)} is ${d.client.connectionState}`);
      const shown = new Set((await this.shown(device)).texts.map((m) => m.body));
      const missing = this.#required(device).filter((s) => !shown.has(s.text));
      if (missing.length > 0) problems.push(`${label(device)} lacks ${missing.map((s) => `"${s.text}"`).join(', ')}`);
      const undecryptable = await this.#undecryptable(device);
      if (undecryptable > 0) problems.push(`${label(device)} has ${undecryptable} undecryptable`);
    }
    const pending = await this.stack.pendingEnvelopes(DEVICES.map((device) => this.nameOf(device)));
    if (pending > 0) problems.push(`the server holds ${pending} envelopes`);
    return problems;
  }

  /** The sends `device` must show exactly once: acknowledged ones it takes part in, unless a restore may have lost them. */
  #required(device: DeviceIndex): Sent[] {
    const lost = this.devices[device]!.mayLack;
    return this.#sent.filter((s) => s.outcome === 'acknowledged' && this.#concerns(s, device) && !lost.has(s.text));
  }

  /** A text goes to every device of its recipient, and (as sent) to every device of its sender. */
  #concerns(sent: Sent, device: DeviceIndex): boolean {
    return personOf(device) === sent.to || personOf(device) === personOf(sent.from);
  }

  /** Every text and notice the device shows in its conversations with the other two people. */
  async shown(device: DeviceIndex): Promise<Shown> {
    const client = this.devices[device]!.client;
    const messages: StoredMessage[] = [];
    for (const person of [0, 1, 2] as const) {
      if (person !== personOf(device)) messages.push(...(await client.conversation(this.usernameOf(person), 10_000)));
    }
    return { texts: messages.filter((m) => m.kind === 'text'), notices: messages.filter((m) => m.kind !== 'text') };
  }

  /**
   * What every device shows, against the model: each text at most once,
   * only texts that were sent, each in its conversation and direction, every
   * required one there, no notices (nothing here should raise one), and
   * nothing undecryptable. Returns the violations; none when all holds.
   */
  async violations(): Promise<string[]> {
    const found: string[] = [];
    const byText = new Map(this.#sent.map((s) => [s.text, s]));
    for (const device of DEVICES) {
      const at = label(device);
      const { texts, notices } = await this.shown(device);
      for (const notice of notices) found.push(`${at} shows a notice: "${notice.body}"`);
      const counts = new Map<string, number>();
      for (const m of texts) counts.set(m.body, (counts.get(m.body) ?? 0) + 1);
      for (const [text, count] of counts) if (count > 1) found.push(`${at} shows "${text}" ${count} times`);
      for (const m of texts) {
        const sent = byText.get(m.body);
        if (sent === undefined) found.push(`${at} shows "${m.body}", which nobody sent`);
        else if (!this.#concerns(sent, device)) found.push(`${at} shows "${m.body}", which was not for it`);
        else if (!this.#inPlace(sent, device, m)) found.push(`${at} shows "${m.body}" in the wrong place (conversation ${m.conversation}, ${m.direction})`);
      }
      for (const s of this.#required(device)) if (!counts.has(s.text)) found.push(`${at} lacks "${s.text}"`);
      const undecryptable = await this.#undecryptable(device);
      if (undecryptable > 0) found.push(`${at} has ${undecryptable} undecryptable messages`);
    }
    return found;
  }

  /** Envelopes the device could not decrypt and that were not recovered, counted until a restore (see `#restored`). */
  async #undecryptable(device: DeviceIndex): Promise<number> {
    return this.#restored ? 0 : this.devices[device]!.client.undecryptableCount(0);
  }

  /** A recipient shows a text as incoming from its author; the author's devices show it as outgoing to the recipient. */
  #inPlace(sent: Sent, device: DeviceIndex, m: StoredMessage): boolean {
    const author = this.usernameOf(personOf(sent.from));
    if (personOf(device) === sent.to) return m.conversation === author && m.direction === 'incoming' && m.author === author;
    return m.conversation === this.usernameOf(sent.to) && m.direction === 'outgoing' && m.author === author && m.authorDevice === deviceIdOf(sent.from);
  }

  /** The sends of the schedule and their outcomes, for a failure's message. */
  summary(): string {
    return this.#sent.map((s) => `${s.text}: ${s.outcome}${s.error === undefined ? '' : ` (${s.error})`}`).join(', ');
  }

  async close(): Promise<void> {
    await this.cast.close();
    for (const device of DEVICES) this.stack.mailroom.deliver(this.nameOf(device), 'in order'); // the next world starts with a clean mailroom
    for (const d of this.devices) if (d.snapshot !== undefined) rmSync(d.snapshot.dir, { recursive: true, force: true });
  }
}
