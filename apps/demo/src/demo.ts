/**
 * `npm run demo`: Parley's promise, shown. A real server process on
 * embedded SQLite, and two people with two devices each (a phone that
 * created the account, a laptop linked to it). They talk, then start a group
 * with a third; while the recipients are offline, the demo reads the server's
 * own database and prints what it stored beside what the devices read once
 * they connect.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ParleyClient, type StoredMessage } from '@parley/client';
import { nodePlatform } from '@parley/client/node';
import SQLite from 'better-sqlite3';

const serverBin = fileURLToPath(new URL('../../../packages/server/bin/parley-server.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'parley-demo-'));
const say = (text = '') => process.stdout.write(`${text}\n`);
const heading = (text: string) => say(`\n\x1b[1m${text}\x1b[0m`);
const dim = (text: string) => `\x1b[2m${text}\x1b[0m`;

async function startServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [serverBin, '--port', '0', '--data', join(root, 'server'), '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (\S+)/.exec(output);
      if (match !== null) resolve(match[1]!);
    });
    void exited.then(() => { reject(new Error(`the server exited: ${output}`)); });
  });
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const platform = (name: string) => nodePlatform(join(root, name), { backoff: { initialMs: 50, maxMs: 500 } });

async function link(existing: ParleyClient, name: string): Promise<ParleyClient> {
  const pending = await existing.startLink();
  const laptop = await ParleyClient.link(platform(name), pending.code);
  await pending.done;
  return laptop;
}

/** Every envelope waiting in the server's mailboxes, as the server itself stores it. */
function serverMailboxes(): void {
  const db = new SQLite(join(root, 'server', 'parley.sqlite'), { readonly: true });
  const rows = db
    .prepare<[], { id: number; username: string; device_id: number; source: string; source_device: number; type: number; body: Buffer; timestamp: number }>(
      'select e.id, a.username, e.device_id, e.source, e.source_device, e.type, e.body, e.timestamp from envelopes e join accounts a on a.id = e.account_id order by e.id',
    )
    .all();
  db.close();
  say(dim('  id  mailbox            from               type  stored at                 body (ciphertext)'));
  for (const r of rows) {
    const hex = r.body.subarray(0, 20).toString('hex');
    say(
      `  ${String(r.id).padEnd(3)} ${`${r.username}.${r.device_id}`.padEnd(18)} ${`${r.source}.${r.source_device}`.padEnd(18)} ${String(r.type).padEnd(5)} ${new Date(r.timestamp).toISOString()}  ${hex}… (${r.body.length} bytes)`,
    );
  }
}

/** The server's tables: nothing in them names a group. */
function serverTables(): string[] {
  const db = new SQLite(join(root, 'server', 'parley.sqlite'), { readonly: true });
  const rows = db.prepare<[], { name: string }>("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%' order by name").all();
  db.close();
  return rows.map((r) => r.name);
}

function show(device: string, messages: StoredMessage[]): void {
  say(`  ${device}:`);
  for (const m of messages) say(`    ${m.direction === 'outgoing' ? 'me' : m.author}: ${m.body}`);
}

async function settle(clients: ParleyClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.sync()));
  await new Promise((resolve) => setTimeout(resolve, 300)); // receipts and transcripts in flight
}

async function main(): Promise<void> {
  heading('1. A Parley server, on embedded SQLite');
  const server = await startServer();
  say(`  listening on ${server.url}; data in ${join(root, 'server')}`);
  const clients: ParleyClient[] = [];
  try {
    heading('2. Alice and Bob each create an account on a phone, then link a laptop');
    const alicePhone = await ParleyClient.create(platform('alice-phone'), server.url, 'alice');
    const aliceLaptop = await link(alicePhone, 'alice-laptop');
    const bobPhone = await ParleyClient.create(platform('bob-phone'), server.url, 'bob');
    const bobLaptop = await link(bobPhone, 'bob-laptop');
    clients.push(alicePhone, aliceLaptop, bobPhone, bobLaptop);
    say('  alice: devices 1 (phone) and 2 (laptop); bob: devices 1 (phone) and 2 (laptop)');
    say('  Each device list is signed by its account\'s identity key: the server cannot add a device.');

    heading('3. Alice writes from her phone while Bob is offline');
    await aliceLaptop.sync();
    await alicePhone.sendText('bob', 'Lunch at noon? The usual place.');
    await alicePhone.sendText('bob', 'I found the book you wanted, by the way.');
    say('  Sent. One copy per device: Bob\'s phone, Bob\'s laptop, and a transcript for Alice\'s laptop.');

    heading('4. What the server stores: ciphertext, padded, and the metadata delivery needs');
    serverMailboxes();

    heading('5. What the devices read once they connect');
    await settle([bobPhone, bobLaptop, aliceLaptop]);
    show("bob's phone", await bobPhone.conversation('alice'));
    show("bob's laptop", await bobLaptop.conversation('alice'));
    show("alice's laptop (sync transcripts)", await aliceLaptop.conversation('bob'));

    heading('6. Bob answers from his laptop; Alice is offline now');
    await alicePhone.close();
    await aliceLaptop.close();
    await bobLaptop.sendText('alice', 'Noon works. Bring the book!');
    serverMailboxes();
    const [phone, laptop] = [await ParleyClient.open(platform('alice-phone')), await ParleyClient.open(platform('alice-laptop'))];
    clients.push(phone, laptop);
    await settle([phone, laptop, bobPhone]);
    show("alice's phone", await phone.conversation('bob'));
    show("alice's laptop", await laptop.conversation('bob'));
    show("bob's phone (sync transcript)", await bobPhone.conversation('alice'));
    const receipt = (await bobLaptop.conversation('alice')).at(-1);
    say(`  bob's laptop shows his message as: ${receipt?.status ?? '?'}`);

    heading('7. A group: Alice makes "Lunch club" with Bob and Carol');
    const carol = await ParleyClient.create(platform('carol-phone'), server.url, 'carol');
    clients.push(carol);
    const club = await phone.createGroup('Lunch club', ['bob', 'carol']);
    await settle([laptop, bobPhone, bobLaptop, carol]);
    say(`  Roster version ${club.version}: ${club.members.map((m) => `${m.username} (${m.role})`).join(', ')}.`);
    say('  Alice signed it with her identity key; every device keeps it and checks every change. The server keeps no');
    say(`  membership at all. Its tables: ${serverTables().join(', ')}.`);
    const offline = [bobPhone, bobLaptop, carol, laptop];
    await Promise.all(offline.map((c) => c.close()));
    await phone.sendGroupText(club.id, 'Friday lunch is on me.');
    say('  Alice sends while the others are offline. Her sender key goes to each of their devices one to one (types 2');
    say('  and 3 below); the message itself is encrypted once (type 7) and the server stores one copy per device:');
    serverMailboxes();
    const members = await Promise.all(['bob-phone', 'bob-laptop', 'carol-phone', 'alice-laptop'].map((name) => ParleyClient.open(platform(name))));
    clients.push(...members);
    await settle(members);
    const [bobsPhone, bobsLaptop, carols, alicesLaptop] = members as [ParleyClient, ParleyClient, ParleyClient, ParleyClient];
    show("bob's phone", (await bobsPhone.groupConversation(club.id)).filter((m) => m.kind === 'text'));
    show("bob's laptop", (await bobsLaptop.groupConversation(club.id)).filter((m) => m.kind === 'text'));
    show("carol's phone", (await carols.groupConversation(club.id)).filter((m) => m.kind === 'text'));
    show("alice's laptop", (await alicesLaptop.groupConversation(club.id)).filter((m) => m.kind === 'text'));

    heading('8. Safety numbers: compare them in person to rule out a man in the middle');
    const number = await bobsPhone.safetyNumber('alice');
    say(`  ${(number.digits.match(/.{5}/g) ?? []).join(' ')}`);
    say('  (the same 60 digits on all four devices; `parley verify alice` shows them with a QR code)');

    heading('What the server saw');
    say('  Who wrote to whom and when, and sizes rounded up to 160 bytes. Never a word of the messages,');
    say('  and every envelope is deleted once its device acknowledges it. docs/PRIVACY.md lists every field.');
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
