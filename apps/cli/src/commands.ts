/**
 * The `parley` commands. Each takes its positional arguments and the global
 * options, prints for people or (`--json`) for programs, and returns the exit
 * code. Every command that reads the mailbox drains it first, with progress
 * on stderr when that takes a while.
 */
import { createInterface } from 'node:readline';

import { ClientError, ParleyClient, type GroupInfo, type LogSink, type StoredMessage } from '@parley/client';
import { nodePlatform } from '@parley/client/node';
import QRCode from 'qrcode';

export class UsageError extends Error {}

export interface Options {
  readonly profile: string;
  readonly json: boolean;
  readonly server?: string;
  readonly name?: string;
  readonly mark: boolean;
  readonly unmark: boolean;
  /** `group create --members`: comma-separated usernames. */
  readonly members?: string;
  /** `link --request`: show a join code for a device of the account to approve, instead of entering its link code. */
  readonly request: boolean;
  /** `PARLEY_LOG`: where the SDK's debug log goes (stderr), if anywhere. */
  readonly log?: LogSink;
}

type Command = (args: string[], options: Options) => Promise<number>;

/** A drain that takes longer than this shows progress. */
const PROGRESS_AFTER_MS = 1_000;

const out = (text: string) => process.stdout.write(`${text}\n`);
const printJson = (value: unknown) => {
  out(JSON.stringify(value));
};

const STATUS_MARK: Record<StoredMessage['status'], string> = { sending: '…', sent: '✓', delivered: '✓✓', read: '✓✓ read', failed: '✗ not sent', received: '' };

function formatMessage(m: StoredMessage): string {
  const time = new Date(m.storedAt).toISOString().replace('T', ' ').slice(0, 19); // this device's clock, never a sender's
  if (m.kind === 'notice') return `${time}  ⚠ ${m.body}`;
  const who = m.direction === 'outgoing' ? 'me' : m.author;
  const mark = m.direction === 'outgoing' ? `  ${STATUS_MARK[m.status]}` : '';
  return `${time}  ${who}: ${m.body}${mark}`;
}

const messageJson = (m: StoredMessage) => ({
  conversation: m.conversation,
  direction: m.direction,
  author: m.author,
  authorDevice: m.authorDevice,
  sentAt: m.sentAt,
  kind: m.kind,
  body: m.body,
  status: m.status,
});

/** This profile's platform, with the SDK's log if `PARLEY_LOG` asks for it. */
const platform = (options: Options) => nodePlatform(options.profile, options.log === undefined ? {} : { log: options.log });

async function open(options: Options): Promise<ParleyClient> {
  try {
    return await ParleyClient.open(platform(options));
  } catch (error) {
    if (error instanceof ClientError && error.code === 'NO_ACCOUNT') {
      throw new ClientError('NO_ACCOUNT', `no account in ${options.profile}; create one with: parley init --server URL --name NAME`);
    }
    throw error;
  }
}

/** Connects and drains the mailbox, showing progress on stderr for a long drain. */
async function drain(client: ParleyClient, options: Options): Promise<number> {
  let received = 0;
  const started = Date.now();
  const off = client.events.on('message', () => {
    received++;
  });
  const progress = setInterval(() => {
    if (Date.now() - started >= PROGRESS_AFTER_MS && !options.json) process.stderr.write(`\rreceiving… ${received} messages`);
  }, 250);
  const offline = client.events.on('connection', ({ state, detail }) => {
    if (state === 'offline' && !options.json) process.stderr.write(`\r${detail}\n`);
  });
  try {
    return await client.sync();
  } finally {
    clearInterval(progress);
    off();
    offline();
    if (Date.now() - started >= PROGRESS_AFTER_MS && !options.json) process.stderr.write(`\rreceived ${received} messages\n`);
  }
}

async function withClient(options: Options, work: (client: ParleyClient) => Promise<number>): Promise<number> {
  const client = await open(options);
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

const init: Command = async (args, options) => {
  if (args.length > 0) throw new UsageError(`init takes no arguments (got "${args.join(' ')}")`);
  if (options.server === undefined || options.name === undefined) throw new UsageError('init needs --server URL and --name NAME');
  const client = await ParleyClient.create(platform(options), options.server, options.name);
  try {
    if (options.json) printJson({ username: client.username, deviceId: client.deviceId, server: client.serverUrl, profile: options.profile });
    else out(`Created ${client.username} on ${client.serverUrl} (device ${client.deviceId}); profile in ${options.profile}`);
    return 0;
  } finally {
    await client.close();
  }
};

const whoami: Command = async (_args, options) =>
  withClient(options, async (client) => {
    if (options.json) printJson({ username: client.username, deviceId: client.deviceId, server: client.serverUrl, profile: options.profile });
    else out(`${client.username} (device ${client.deviceId}) on ${client.serverUrl}`);
    return 0;
  });

const send: Command = async (args, options) => {
  const [to, ...words] = args;
  if (to === undefined || words.length === 0) throw new UsageError('send needs a username and a message: parley send bob "hello"');
  return withClient(options, async (client) => {
    await drain(client, options);
    const message = await client.sendText(to, words.join(' '));
    if (options.json) printJson(messageJson(message));
    else out(`sent to ${message.conversation} ${STATUS_MARK[message.status]}`);
    return 0;
  });
};

const inbox: Command = async (args, options) => {
  const [who] = args;
  return withClient(options, async (client) => {
    await drain(client, options);
    if (who !== undefined) {
      const messages = await client.conversation(who);
      if (options.json) printJson({ conversation: who, messages: messages.map(messageJson) });
      else for (const m of messages) out(formatMessage(m));
      await client.markRead(who).catch(() => 0);
      return 0;
    }
    const conversations = await client.conversations();
    const titles = new Map((await client.groups()).map((g) => [g.conversation, `# ${g.title}`]));
    if (options.json) printJson({ conversations: conversations.map((c) => ({ username: c.username, last: messageJson(c.last), unread: c.unread })) });
    else if (conversations.length === 0) out('No messages yet.');
    else for (const c of conversations) out(`${(titles.get(c.username) ?? c.username).padEnd(20)} ${formatMessage(c.last)}${c.unread > 0 ? `  (${c.unread} unread)` : ''}`);
    return 0;
  });
};

const chat: Command = async (args, options) => {
  const [who] = args;
  if (who === undefined) throw new UsageError('chat needs a username: parley chat bob');
  const peer = who.toLowerCase();
  return withClient(options, async (client) => {
    const show = (m: StoredMessage) => {
      if (m.conversation !== peer) return;
      if (options.json) printJson({ event: 'message', ...messageJson(m) });
      else out(formatMessage(m));
    };
    client.events.on('message', show);
    client.events.on('status', (m) => {
      if (m.conversation !== peer) return;
      if (options.json) printJson({ event: 'status', sentAt: m.sentAt, status: m.status });
      else if (m.status !== 'sent') out(`  (${STATUS_MARK[m.status]}: "${m.body.slice(0, 30)}")`);
    });
    client.events.on('typing', ({ from, typing }) => {
      if (from !== peer) return;
      if (options.json) printJson({ event: 'typing', from, typing });
      else if (typing) out(`  ${from} is typing…`);
    });
    client.events.on('connection', ({ state, detail }) => {
      if (options.json) printJson({ event: 'connection', state, detail });
      else if (state !== 'online') process.stderr.write(`[${state}] ${detail}\n`);
    });
    for (const m of await client.conversation(peer, 20)) show(m);
    await drain(client, options);
    await client.markRead(peer).catch(() => 0);
    if (!options.json) out(`Chatting with ${peer}. Type a message and press Enter; Ctrl-D to leave.`);
    const lines = createInterface({ input: process.stdin, terminal: false });
    for await (const line of lines) {
      const text = line.trim();
      if (text === '') continue;
      try {
        await client.sendText(peer, text);
        await client.markRead(peer).catch(() => 0);
      } catch (error) {
        if (!(error instanceof ClientError)) throw error;
        if (options.json) printJson({ event: 'error', code: error.code, message: error.message });
        else process.stderr.write(`parley: ${error.message}\n`);
      }
    }
    return 0;
  });
};

const verify: Command = async (args, options) => {
  const [who] = args;
  if (who === undefined) throw new UsageError('verify needs a username: parley verify bob');
  if (options.mark && options.unmark) throw new UsageError('--mark and --unmark exclude each other');
  return withClient(options, async (client) => {
    if (options.mark) await client.verify(who);
    if (options.unmark) await client.unverify(who);
    const number = await client.safetyNumber(who);
    const groups = number.digits.match(/.{5}/g) ?? [];
    const qrText = Buffer.from(number.scannable).toString('base64');
    if (options.json) {
      printJson({ username: who.toLowerCase(), safetyNumber: number.digits, scannable: qrText, verified: number.verified });
      return 0;
    }
    out(`Safety number with ${who.toLowerCase()}:\n`);
    out(`  ${groups.slice(0, 6).join(' ')}\n  ${groups.slice(6).join(' ')}\n`);
    out(await QRCode.toString(qrText, { type: 'terminal', small: true }));
    out(number.verified ? `✓ ${who} is verified.` : `Not verified. Compare these digits with ${who} in person, then run: parley verify ${who} --mark`);
    return 0;
  });
};

const devices: Command = async (args, options) => {
  const [action, id] = args;
  switch (action) {
    case 'list':
      return withClient(options, async (client) => {
        const list = await client.devices();
        if (options.json) printJson({ devices: list });
        else for (const d of list) out(`device ${d.deviceId}${d.current ? ' (this one)' : ''}`);
        return 0;
      });
    case 'link':
      return withClient(options, async (client) => {
        const pending = await client.startLink();
        await showCode(options, pending.code, 'On the new device, run `parley link` and paste this code (or scan it):', 'Keep this code to yourself: it hands over your account. Waiting for the new device…');
        const { deviceId } = await pending.done;
        if (options.json) printJson({ event: 'linked', deviceId });
        else out(`Linked device ${deviceId}.`);
        return 0;
      });
    case 'approve': {
      if (args.length > 2) throw new UsageError('devices approve takes one code: parley devices approve CODE (or the code on standard input)');
      const code = id ?? (await readCode('the code the new device shows'));
      return withClient(options, async (client) => {
        const { deviceId } = await client.approveLink(code);
        if (options.json) printJson({ event: 'linked', deviceId });
        else out(`Linked device ${deviceId}.`);
        return 0;
      });
    }
    case 'unlink': {
      const deviceId = Number(id);
      if (!Number.isInteger(deviceId) || deviceId < 1) throw new UsageError('devices unlink needs a device id: parley devices unlink 2');
      return withClient(options, async (client) => {
        await client.unlinkDevice(deviceId);
        if (options.json) printJson({ unlinked: deviceId });
        else out(`Unlinked device ${deviceId}; it receives nothing from now on.`);
        return 0;
      });
    }
    default:
      throw new UsageError(`devices takes list, link, approve or unlink${action === undefined ? '' : `, not "${action}"`}`);
  }
};

/**
 * A code from standard input (`what` names it in the prompt). A link code
 * hands over the account, so it stays out of the command line (ps, shell
 * history).
 */
async function readCode(what: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(`Paste ${what}, then press Enter: `);
  for await (const line of createInterface({ input: process.stdin, terminal: false })) {
    if (line.trim() !== '') return line.trim();
  }
  throw new UsageError('no code on standard input');
}

/** Shows a linking code as text and as a terminal QR code between two lines of instructions (as JSON with --json). */
async function showCode(options: Options, code: string, before: string, after: string): Promise<void> {
  if (options.json) {
    printJson({ event: 'code', code });
    return;
  }
  out(`${before}\n`);
  out(`  ${code}\n`);
  out(await QRCode.toString(code, { type: 'terminal', small: true }));
  out(after);
}

/** `link --request`: shows a join code and waits until a device of the account approves it. */
async function requestLink(options: Options): Promise<ParleyClient> {
  if (options.server === undefined) throw new UsageError('link --request needs the account\'s server: parley link --request --server URL');
  const request = await ParleyClient.requestLink(platform(options), options.server);
  await showCode(options, request.code, 'On a device already linked to your account, run `parley devices approve` and paste this code (or scan it):', 'Waiting for approval…');
  return request.done;
}

const link: Command = async (args, options) => {
  if (args.length > 0) throw new UsageError('link reads the code from standard input, not the command line (it would stay in your shell history)');
  let client: ParleyClient;
  if (options.request) client = await requestLink(options);
  else {
    const code = await readCode('the link code your other device shows');
    if (!options.json) out('Linking… (your other device shows its progress too)');
    client = await ParleyClient.link(platform(options), code);
  }
  try {
    const messages = (await client.conversations()).length;
    if (options.json) printJson({ username: client.username, deviceId: client.deviceId, server: client.serverUrl, conversations: messages });
    else out(`Linked as ${client.username} (device ${client.deviceId}), with ${messages} conversation${messages === 1 ? '' : 's'} of history.`);
    return 0;
  } finally {
    await client.close();
  }
};

/**
 * A group named on the command line: its id, a unique prefix of it (4 hex
 * digits or more), or its title (ignoring case) when no other group has it.
 */
async function findGroup(client: ParleyClient, reference: string | undefined): Promise<GroupInfo> {
  if (reference === undefined) throw new UsageError('name the group: its title, or its id (parley group list shows both)');
  const groups = await client.groups();
  const wanted = reference.toLowerCase();
  const byId = /^[0-9a-f]{4,32}$/.test(wanted) ? groups.filter((g) => g.id.startsWith(wanted)) : [];
  const matches = byId.length > 0 ? byId : groups.filter((g) => g.title.toLowerCase() === wanted);
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new UsageError(`no group "${reference}" on this device (parley group list shows them)`);
  throw new UsageError(`${matches.length} groups are called "${reference}"; name one by its id: ${matches.map((g) => g.id.slice(0, 8)).join(', ')}`);
}

const groupJson = (g: GroupInfo) => ({ id: g.id, title: g.title, version: g.version, member: g.member, members: g.members });

function printGroup(g: GroupInfo, options: Options, verb: string): void {
  if (options.json) printJson(groupJson(g));
  else out(`${verb} "${g.title}" (${g.id.slice(0, 8)}, version ${g.version}): ${g.members.map((m) => (m.role === 'admin' ? `${m.username} (admin)` : m.username)).join(', ')}`);
}

/** `group add|remove|promote|demote GROUP USER`: one roster change, signed here. */
const GROUP_EDITS = {
  add: ['addGroupMember', 'Added to'],
  remove: ['removeGroupMember', 'Removed from'],
  promote: ['promoteGroupMember', 'Promoted in'],
  demote: ['demoteGroupMember', 'Demoted in'],
} as const;

const group: Command = async (args, options) => {
  const [action, reference, ...rest] = args;
  switch (action) {
    case 'create': {
      if (reference === undefined) throw new UsageError('group create needs a title: parley group create "Book club" --members bob,carol');
      const members = (options.members ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
      return withClient(options, async (client) => {
        await drain(client, options);
        printGroup(await client.createGroup([reference, ...rest].join(' '), members), options, 'Created');
        return 0;
      });
    }
    case 'list':
      return withClient(options, async (client) => {
        await drain(client, options);
        const groups = await client.groups();
        if (options.json) printJson({ groups: groups.map(groupJson) });
        else if (groups.length === 0) out('No groups yet. Create one with: parley group create NAME --members bob,carol');
        else for (const g of groups) out(`${g.id.slice(0, 8)}  ${g.title}  (${g.members.length} member${g.members.length === 1 ? '' : 's'}${g.member ? '' : ', you left'})`);
        return 0;
      });
    case 'show':
      return withClient(options, async (client) => {
        await drain(client, options);
        const g = await findGroup(client, reference);
        const members = await client.groupMembers(g.id);
        if (options.json) {
          printJson({ ...groupJson(g), members });
          return 0;
        }
        out(`${g.title}  (id ${g.id}, version ${g.version}${g.member ? '' : '; you are no longer in it'})`);
        for (const m of members) {
          const trust = m.username === client.username ? 'you' : m.verified ? '✓ verified' : 'not verified';
          const warning = m.keyMatches ? '' : '  ⚠ the group lists another key for them';
          out(`  ${m.username.padEnd(20)} ${m.role.padEnd(7)} devices ${m.devices.join(', ').padEnd(10)} ${trust}${warning}`);
        }
        return 0;
      });
    case 'add':
    case 'remove':
    case 'promote':
    case 'demote': {
      const [who] = rest;
      if (who === undefined || rest.length > 1) throw new UsageError(`group ${action} needs a group and one username: parley group ${action} GROUP bob`);
      const [method, verb] = GROUP_EDITS[action];
      return withClient(options, async (client) => {
        await drain(client, options);
        const g = await findGroup(client, reference);
        printGroup(await client[method](g.id, who), options, verb);
        return 0;
      });
    }
    case 'rename':
      if (rest.length === 0) throw new UsageError('group rename needs a group and a new title: parley group rename GROUP "New title"');
      return withClient(options, async (client) => {
        await drain(client, options);
        printGroup(await client.renameGroup((await findGroup(client, reference)).id, rest.join(' ')), options, 'Renamed');
        return 0;
      });
    case 'leave':
      return withClient(options, async (client) => {
        await drain(client, options);
        printGroup(await client.leaveGroup((await findGroup(client, reference)).id), options, 'Left');
        return 0;
      });
    case 'send':
      if (rest.length === 0) throw new UsageError('group send needs a group and a message: parley group send GROUP "hello"');
      return withClient(options, async (client) => {
        await drain(client, options);
        const g = await findGroup(client, reference);
        const message = await client.sendGroupText(g.id, rest.join(' '));
        if (options.json) printJson(messageJson(message));
        else out(`sent to ${g.title} ${STATUS_MARK[message.status]}`);
        return 0;
      });
    case 'read':
      return withClient(options, async (client) => {
        await drain(client, options);
        const g = await findGroup(client, reference);
        const messages = await client.groupConversation(g.id);
        if (options.json) printJson({ group: g.id, messages: messages.map(messageJson) });
        else for (const m of messages) out(formatMessage(m));
        return 0;
      });
    default:
      throw new UsageError(`group takes create, list, show, add, remove, promote, demote, rename, leave, send or read${action === undefined ? '' : `, not "${action}"`}`);
  }
};

export const commands: Record<string, Command | undefined> = { init, link, whoami, send, inbox, chat, verify, devices, group };
