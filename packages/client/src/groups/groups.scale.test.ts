/**
 * A 100-member group with two devices per member, on a real server: every
 * one of the 200 devices is a real client with its own SQLite profile and
 * WebSocket. The roster, messages and a removal reach exactly the devices
 * they should, each shown once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ParleyClient } from '@parley/client';

import { Cast, eventually } from '../../../../testing/clients.js';
import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../../testing/server.js';

const MEMBERS = 100;
/** Devices are set up this many at a time: the machine has few cores, the server many sockets. */
const BATCH = 10;

let storage: Storage;
let server: ServerProcess;
const cast = new Cast(() => server.url);

beforeAll(async () => {
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage, ['--links', String(2 * MEMBERS)]); // each link opens two relay channels, all from this one address
});

afterAll(async () => {
  await cast.close();
  await server.stop();
  await storage.drop();
});

async function inBatches<T, R>(items: readonly T[], work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let start = 0; start < items.length; start += BATCH) {
    out.push(...(await Promise.all(items.slice(start, start + BATCH).map((item, i) => work(item, start + i)))));
  }
  return out;
}

const texts = async (client: ParleyClient, groupId: string) =>
  (await client.groupConversation(groupId, 1000)).filter((m) => m.kind === 'text').map((m) => m.body);

/** Waits until every client shows exactly `expected` (in order) in the group. */
async function allShow(clients: readonly ParleyClient[], groupId: string, expected: readonly string[]): Promise<void> {
  await eventually(`${clients.length} devices show ${JSON.stringify(expected)}`, async () => {
    for (const c of clients) if ((await texts(c, groupId)).length < expected.length) return false;
    return true;
  });
  for (const c of clients) expect(await texts(c, groupId), `${c.username}.${c.deviceId}`).toEqual(expected);
}

describe(`a group of ${MEMBERS} members with two devices each`, () => {
  it('the roster, messages and a removal reach exactly the devices they should, each once', { timeout: 600_000 }, async () => {
    const firsts = await inBatches(Array.from({ length: MEMBERS }, (_, i) => `m${i}`), (name) => cast.person(name));
    const seconds = await inBatches(firsts, (first) => cast.linkTo(first));
    const [owner, ...others] = firsts;
    const everyone = [...firsts, ...seconds];
    const allBut = (...skip: ParleyClient[]) => everyone.filter((c) => !skip.includes(c));

    const group = await owner!.createGroup('Hundred', others.map((c) => c.username));
    expect(group.members).toHaveLength(MEMBERS);
    await eventually('every device has the roster', async () => {
      for (const c of everyone) if ((await c.groups()).length === 0) return false;
      return true;
    });
    for (const c of everyone) expect((await c.group(group.id)).version, `${c.username}.${c.deviceId}`).toBe(1);

    await owner!.sendGroupText(group.id, 'welcome, everyone');
    await seconds[1]!.sendGroupText(group.id, 'thanks from a second device');
    await firsts[50]!.sendGroupText(group.id, 'hello from the middle');
    const said = ['welcome, everyone', 'thanks from a second device', 'hello from the middle'];
    await allShow(everyone, group.id, said);

    const leaving = firsts[MEMBERS - 1]!;
    const leavingDevices = [leaving, seconds[MEMBERS - 1]!];
    await owner!.removeGroupMember(group.id, leaving.username);
    await eventually('every device has version 2', async () => {
      for (const c of everyone) if ((await c.group(group.id)).version !== 2) return false;
      return true;
    });
    await owner!.sendGroupText(group.id, 'after the removal');
    await seconds[7]!.sendGroupText(group.id, 'a fresh key from me too');
    await allShow(allBut(...leavingDevices), group.id, [...said, 'after the removal', 'a fresh key from me too']);
    for (const c of leavingDevices) {
      await c.sync();
      expect(await texts(c, group.id)).toEqual(said);
      expect((await c.group(group.id)).member).toBe(false);
    }
    for (const c of everyone) expect(await c.undecryptableCount(0), `${c.username}.${c.deviceId}`).toBe(0);
  });
});
