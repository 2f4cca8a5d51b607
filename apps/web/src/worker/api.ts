/**
 * The operations the page may ask of its worker: a thin layer over
 * ParleyClient, with the session's life (create, open, link) added. Every
 * method's arguments and results are plain data, as postMessage requires.
 */
import { ClientError, ParleyClient, type GroupInfo, type Platform, type StoredMessage } from '@parley/client';

import type { Failure, PageEvents, Session } from './messages.js';

/** What the API needs of the worker that hosts it. */
export interface Host {
  /** The platform on this browser profile's IndexedDB; opened once. */
  platform(): Promise<Platform>;
  /** The server: the page's own origin. */
  readonly serverUrl: string;
  emit<K extends keyof PageEvents>(event: K, value: PageEvents[K]): void;
}

/** The page's failure for an error: a ClientError keeps its code and message; anything else is a bug, said plainly. */
export function failure(error: unknown): Failure {
  if (error instanceof ClientError) return { code: error.code, message: error.message };
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error) };
}

/** The client events the page hears as they are. */
const FORWARDED = ['message', 'status', 'typing', 'identityChange', 'devices', 'connection', 'drained', 'group', 'groupAlert'] as const;

function forward(client: ParleyClient, name: (typeof FORWARDED)[number], host: Host): void {
  client.events.on(name, (value) => { host.emit(name, value); });
}

export function workerApi(host: Host) {
  let client: ParleyClient | undefined;
  let opening: Promise<Session | undefined> | undefined;
  let cancelLink: (() => void) | undefined;

  /** The open client. @throws ClientError `NO_ACCOUNT` before one is open. */
  const current = (): ParleyClient => {
    if (client === undefined) throw new ClientError('NO_ACCOUNT', 'this browser holds no account yet');
    return client;
  };

  /** Binds the client's events to the page and connects. */
  const adopt = (opened: ParleyClient): Session => {
    client = opened;
    for (const name of FORWARDED) forward(opened, name, host);
    opened.events.on('warning', ({ message }) => { host.emit('warning', { message }); });
    opened.connect();
    const session = { username: opened.username, deviceId: opened.deviceId };
    host.emit('session', session);
    return session;
  };

  return {
    /** The account in this browser, opened and connecting; undefined if there is none yet. Asked twice, it opens once. */
    async open(): Promise<Session | undefined> {
      opening ??= (async () => {
        try {
          return adopt(await ParleyClient.open(await host.platform()));
        } catch (error) {
          opening = undefined; // after NO_ACCOUNT, create or link; after PROFILE_IN_USE, try again later
          if (error instanceof ClientError && error.code === 'NO_ACCOUNT') return undefined;
          throw error;
        }
      })();
      return opening;
    },

    /** Creates an account on this origin's server, with this browser as its first device. */
    async create(username: string): Promise<Session> {
      return adopt(await ParleyClient.create(await host.platform(), host.serverUrl, username));
    },

    /** Asks to join an existing account: returns the code to show; `session` follows once a device of the account approves. */
    async requestLink(): Promise<string> {
      cancelLink?.();
      const request = await ParleyClient.requestLink(await host.platform(), host.serverUrl);
      cancelLink = () => { request.cancel(); };
      request.done.then(
        (joined) => { adopt(joined); },
        (error: unknown) => { host.emit('linkFailed', failure(error)); },
      );
      return request.code;
    },

    /** Offers a link from this device: returns the code for the new device; `deviceLinked` follows once it joins. */
    async startLink(): Promise<string> {
      cancelLink?.();
      const pending = await current().startLink();
      cancelLink = () => { pending.cancel(); };
      pending.done.then(
        ({ deviceId }) => { host.emit('deviceLinked', { deviceId }); },
        (error: unknown) => { host.emit('linkFailed', failure(error)); },
      );
      return pending.code;
    },

    async cancelLink(): Promise<void> {
      cancelLink?.();
      cancelLink = undefined;
    },

    /** Approves a new device that shows `code`, giving it the account and recent history. */
    async approveLink(code: string): Promise<number> {
      return (await current().approveLink(code)).deviceId;
    },

    async devices() {
      return current().devices();
    },

    async unlinkDevice(deviceId: number): Promise<void> {
      await current().unlinkDevice(deviceId);
    },

    async conversations() {
      return current().conversations();
    },

    async conversation(peer: string, limit: number): Promise<StoredMessage[]> {
      return current().conversation(peer, limit);
    },

    async groupConversation(groupId: string, limit: number): Promise<StoredMessage[]> {
      return current().groupConversation(groupId, limit);
    },

    async sendText(peer: string, text: string): Promise<void> {
      await current().sendText(peer, text);
    },

    async sendGroupText(groupId: string, text: string): Promise<void> {
      await current().sendGroupText(groupId, text);
    },

    async markRead(peer: string): Promise<number> {
      return current().markRead(peer);
    },

    async markGroupRead(groupId: string): Promise<number> {
      return current().markGroupRead(groupId);
    },

    async setTyping(peer: string, typing: boolean): Promise<void> {
      await current().setTyping(peer, typing);
    },

    async contact(peer: string) {
      return current().contact(peer);
    },

    async refreshContact(peer: string): Promise<void> {
      await current().refreshContact(peer);
    },

    async safetyNumber(peer: string) {
      return current().safetyNumber(peer);
    },

    async verify(peer: string): Promise<void> {
      await current().verify(peer);
    },

    async unverify(peer: string): Promise<void> {
      await current().unverify(peer);
    },

    async dismissKeyChange(peer: string): Promise<void> {
      await current().dismissKeyChange(peer);
    },

    async groups(): Promise<GroupInfo[]> {
      return current().groups();
    },

    async createGroup(title: string, members: readonly string[]): Promise<GroupInfo> {
      return current().createGroup(title, members);
    },

    async groupMembers(groupId: string) {
      return current().groupMembers(groupId);
    },
  };
}

export type WorkerApi = ReturnType<typeof workerApi>;
