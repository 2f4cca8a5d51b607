/**
 * `parley` driven end to end as a user would: real `parley` processes, each
 * with its own profile, against a real server process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Cli } from '../../../testing/cli.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../testing/server.js';

let storage: Storage;
let server: ServerProcess;
const cli = new Cli();
const suffix = Math.random().toString(36).slice(2, 7);
const alice = `alice_${suffix}`;
const bob = `bob_${suffix}`;

/** Runs `parley` with `who`'s profile; resolves with its exit code and output, whatever the code. */
const parley = (who: string, ...args: string[]) => cli.run(who, ...args);

const json = (stdout: string): unknown => JSON.parse(stdout);

beforeAll(async () => {
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage);
});

afterAll(async () => {
  await server.stop();
  await storage.drop();
  cli.remove();
});

describe('parley group', () => {
  const [ann, ben, cat] = ['ann', 'ben', 'cat'].map((n) => `${n}_${suffix}`) as [string, string, string];

  it('create, send, read, show, add, remove and leave, each device seeing the same roster', async () => {
    for (const who of [ann, ben, cat]) expect((await parley(who, 'init', '--server', server.url, '--name', who)).code).toBe(0);
    const created = await parley(ann, '--json', 'group', 'create', 'Book', 'club', '--members', `${ben},${cat}`);
    expect(created.code, created.stderr).toBe(0);
    const group = json(created.stdout) as { id: string; title: string; members: { username: string; role: string }[] };
    expect(group).toMatchObject({ title: 'Book club', version: 1 });
    expect(group.members).toEqual([{ username: ann, role: 'admin' }, { username: ben, role: 'member' }, { username: cat, role: 'member' }]);

    expect((await parley(ben, 'group', 'send', 'book club', 'first', 'chapter?')).stdout).toContain('sent to Book club ✓');
    const read = await parley(cat, 'group', 'read', group.id.slice(0, 6));
    expect(read.stdout).toContain(`${ben}: first chapter?`);
    expect(read.stdout).toContain(`${ann} created the group "Book club"`);
    expect((await parley(ann, 'inbox')).stdout).toContain('# Book club');

    const shown = await parley(ben, 'group', 'show', 'Book club');
    expect(shown.stdout).toMatch(new RegExp(`${ann}\\s+admin\\s+devices 1\\s+not verified`));
    expect(shown.stdout).toMatch(new RegExp(`${ben}\\s+member\\s+devices 1\\s+you`));

    const notAdmin = await parley(ben, 'group', 'remove', 'Book club', cat);
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toMatch(/not an admin/);
    expect((await parley(ann, 'group', 'remove', 'Book club', cat)).stdout).toContain('Removed from "Book club"');
    expect((await parley(ann, 'group', 'send', 'Book club', 'cat is gone')).code).toBe(0);
    expect((await parley(ben, 'group', 'read', 'Book club')).stdout).toContain(`${ann}: cat is gone`);
    const catView = await parley(cat, '--json', 'group', 'list');
    expect(json(catView.stdout)).toMatchObject({ groups: [{ id: group.id, member: false }] });
    expect((await parley(cat, 'group', 'read', 'Book club')).stdout).not.toContain('cat is gone');
    const catSend = await parley(cat, 'group', 'send', 'Book club', 'hello?');
    expect(catSend.code).toBe(1);
    expect(catSend.stderr).toMatch(/no longer in this group/);

    // Added back, cat reads what follows, not what she missed.
    expect((await parley(ann, 'group', 'add', 'Book club', cat)).stdout).toContain('Added to "Book club"');
    expect((await parley(cat, 'group', 'send', 'Book club', 'back again')).code).toBe(0);
    expect((await parley(ann, 'group', 'read', 'Book club')).stdout).toContain(`${cat}: back again`);
    expect((await parley(cat, 'group', 'read', 'Book club')).stdout).not.toContain('cat is gone');
    expect((await parley(ben, 'group', 'leave', 'Book club')).stdout).toContain('Left "Book club"');
    expect(json((await parley(cat, '--json', 'group', 'list')).stdout)).toMatchObject({ groups: [{ members: [{ username: ann }, { username: cat }] }] });

    const unknown = await parley(ann, 'group', 'send', 'Chess', 'hi');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no group "Chess"/);
  });
});

describe('parley, end to end', () => {
  it('init, send, inbox and verify', async () => {
    expect((await parley(alice, 'init', '--server', server.url, '--name', alice)).stdout).toContain(`Created ${alice}`);
    expect(json((await parley(bob, '--json', 'init', '--server', server.url, '--name', bob)).stdout)).toMatchObject({ username: bob, deviceId: 1 });

    const sent = await parley(alice, '--json', 'send', bob, 'hello', 'from', 'the', 'terminal');
    expect(sent.code).toBe(0);
    expect(json(sent.stdout)).toMatchObject({ conversation: bob, body: 'hello from the terminal', status: 'sent' });

    const inbox = json((await parley(bob, '--json', 'inbox')).stdout) as { conversations: { username: string; last: { body: string } }[] };
    expect(inbox.conversations.map((c) => [c.username, c.last.body])).toEqual([[alice, 'hello from the terminal']]);
    expect((await parley(bob, 'inbox', alice)).stdout).toContain(`${alice}: hello from the terminal`);

    const number = json((await parley(alice, '--json', 'verify', bob)).stdout) as { safetyNumber: string; verified: boolean };
    const theirs = json((await parley(bob, '--json', 'verify', alice)).stdout) as { safetyNumber: string };
    expect(number.safetyNumber).toMatch(/^\d{60}$/);
    expect(number.safetyNumber).toBe(theirs.safetyNumber);
    expect(number.verified).toBe(false);
    expect((await parley(alice, 'verify', bob)).stdout).toMatch(/Not verified/);
    expect(json((await parley(alice, '--json', 'verify', bob, '--mark')).stdout)).toMatchObject({ verified: true });
  });

  it('chat shows incoming messages live and sends what is typed, with receipts', async () => {
    const chat = cli.spawn(bob, '--json', 'chat', alice);
    const events: Record<string, unknown>[] = [];
    let buffered = '';
    chat.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (line.trim() !== '') events.push(JSON.parse(line) as Record<string, unknown>);
    });
    const until = async (what: string, check: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`chat: no ${what}; saw ${JSON.stringify(events)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await until('connection', () => events.some((e) => e['event'] === 'connection' && e['state'] === 'online'));

    expect((await parley(alice, 'send', bob, 'are you there?')).code).toBe(0);
    await until('incoming message', () => events.some((e) => e['event'] === 'message' && e['body'] === 'are you there?'));

    chat.stdin.write('yes, live!\n');
    await until('own message sent', () => events.some((e) => e['event'] === 'status' && e['status'] === 'sent'));
    const inbox = (await parley(alice, 'inbox', bob)).stdout;
    expect(inbox).toContain(`${bob}: yes, live!`);
    await until('delivery receipt', () => events.some((e) => e['event'] === 'status' && (e['status'] === 'delivered' || e['status'] === 'read')));

    chat.stdin.end();
    const code = await new Promise<number | null>((resolve) => chat.on('exit', resolve));
    expect(code).toBe(0);
  });

  it('devices link shows a code; link on a new profile reads it from stdin and joins with the history', async () => {
    const offer = cli.spawn(alice, '--json', 'devices', 'link');
    const lines: string[] = [];
    offer.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter((l) => l.trim() !== '')));
    const deadline = Date.now() + 30_000;
    while (lines.length === 0) {
      if (Date.now() > deadline) throw new Error('devices link printed no code');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const { code } = JSON.parse(lines[0]!) as { code: string };
    expect(code).toMatch(/^parley:\/\/link\?v=1&/);

    const joiner = cli.spawn(`${alice}_laptop`, '--json', 'link');
    let joined = '';
    joiner.stdout.on('data', (chunk: Buffer) => (joined += chunk.toString()));
    joiner.stdin.end(`${code}\n`);
    const [offerCode, joinCode] = await Promise.all([new Promise((r) => offer.on('exit', r)), new Promise((r) => joiner.on('exit', r))]);
    expect([offerCode, joinCode]).toEqual([0, 0]);
    expect(JSON.parse(joined)).toMatchObject({ username: alice, deviceId: 2 });
    expect(JSON.parse(lines.at(-1)!)).toEqual({ event: 'linked', deviceId: 2 });
    expect((await parley(`${alice}_laptop`, 'inbox', bob)).stdout).toContain('me: hello from the terminal');
    expect((await parley(alice, '--json', 'devices', 'list')).stdout).toContain('"deviceId":2');
  });

  it('link --request shows a join code on the new profile; devices approve, reading it from stdin, links it', async () => {
    const tablet = `${alice}_tablet`;
    const requester = cli.spawn(tablet, '--json', 'link', '--request', '--server', server.url);
    const lines: string[] = [];
    requester.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter((l) => l.trim() !== '')));
    const deadline = Date.now() + 30_000;
    while (lines.length === 0) {
      if (Date.now() > deadline) throw new Error('link --request printed no code');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const { code } = JSON.parse(lines[0]!) as { code: string };
    expect(code).toMatch(/^parley:\/\/join\?v=1&/);

    const approver = cli.spawn(alice, '--json', 'devices', 'approve');
    let approved = '';
    approver.stdout.on('data', (chunk: Buffer) => (approved += chunk.toString()));
    approver.stdin.end(`${code}\n`);
    const [requesterExit, approverExit] = await Promise.all([new Promise((r) => requester.on('exit', r)), new Promise((r) => approver.on('exit', r))]);
    expect([requesterExit, approverExit]).toEqual([0, 0]);
    expect(JSON.parse(approved)).toEqual({ event: 'linked', deviceId: 3 });
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ username: alice, deviceId: 3 });
    expect((await parley(tablet, 'inbox', bob)).stdout).toContain('me: hello from the terminal');

    const noAccount = await parley(`${alice}_phone`, 'devices', 'approve', code);
    expect(noAccount.code).toBe(1);
    expect(noAccount.stderr).toMatch(/^parley: no account in/);
    const linkCodeHere = await parley(alice, 'devices', 'approve', 'parley://link?v=1&server=x&c=AAAA');
    expect(linkCodeHere.code).toBe(1);
    expect(linkCodeHere.stderr).toBe('parley: that code is shown by a device already linked: enter it on the new device (it hands over the account)\n');
  });

  it('user mistakes get one clear line and an exit code, never a stack trace', async () => {
    const unknown = await parley(alice, 'send', 'nobody_like_this', 'hi');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`parley: no account named nobody_like_this on ${server.url}\n`);
    const noProfile = await parley('carol', 'inbox');
    expect(noProfile.code).toBe(1);
    expect(noProfile.stderr).toMatch(/^parley: no account in .*carol; create one with: parley init/);
    const usage = await parley(alice, 'send', bob);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^parley: send needs a username and a message/);
    const taken = await parley('alice_again', 'init', '--server', server.url, '--name', alice);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/^parley: .*taken/i);
    for (const result of [unknown, noProfile, usage, taken]) expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
