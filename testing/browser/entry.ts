/**
 * The page the browser test loads: the client SDK on the browser's own
 * platform (WebCrypto and @noble, IndexedDB, the browser's WebSocket),
 * exposed to the test as `window.parley`. The server is the page's origin.
 */
import { ParleyClient } from '@parley/client';
import { webPlatform } from '@parley/client/web';

let client: ParleyClient | undefined;
const backoff = { initialMs: 50, maxMs: 500 };

const api = {
  async create(username: string): Promise<{ username: string; deviceId: number }> {
    client = await ParleyClient.create(await webPlatform(`parley-${username}`, { backoff }), location.origin, username);
    await client.sync();
    return { username: client.username, deviceId: client.deviceId };
  },
  async reopen(username: string): Promise<void> {
    await client?.close();
    client = await ParleyClient.open(await webPlatform(`parley-${username}`, { backoff }));
    await client.sync();
  },
  async send(to: string, text: string): Promise<string> {
    return (await client!.sendText(to, text)).status;
  },
  async conversation(peer: string): Promise<{ body: string; direction: string; status: string }[]> {
    await client!.sync();
    return (await client!.conversation(peer)).map((m) => ({ body: m.body, direction: m.direction, status: m.status }));
  },
  async safetyNumber(peer: string): Promise<string> {
    return (await client!.safetyNumber(peer)).digits;
  },
};

(globalThis as unknown as { parley: typeof api }).parley = api;
