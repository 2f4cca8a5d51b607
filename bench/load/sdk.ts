/**
 * The `sdk` workload: real ParleyClients (packages/client), as an app drives
 * them. Lane i's client sends texts to client lanes + i with `sendText`; the
 * recipient's client decrypts, stores and shows each one (its `message`
 * event), acknowledges the envelope and sends a delivery receipt back, which
 * the sender's client processes in turn. So every text costs the server two
 * envelopes, as it does in the apps.
 *
 * Clients keep their state in memory (MemoryStore), so that the generator's
 * disk writes do not compete with the server's; everything else (keys,
 * sessions, the transport, reconnects, receipts) is the SDK's own code.
 * A text carries its send time and lane: "<sentAt> <lane>".
 */
import { MemoryStore, ParleyClient, type StoredMessage, type WebSocketLike } from '@parley/client';
import WebSocket from 'ws';

import { provider } from '../../testing/device.js';
import type { Sink } from '../server/driver.js';
import { inBatches } from './accounts.js';
import { settled, type Attached } from './workloads.js';

/** Each run's clients register under fresh names, so a server can take several runs. */
let runs = 0;

const webSocket = (url: string) => new WebSocket(url, { perMessageDeflate: false }) as unknown as WebSocketLike;
const openClient = (serverUrl: string, username: string) => ParleyClient.create({ provider, store: new MemoryStore(), webSocket }, serverUrl, username);

/** Resolves with the first incoming text `client` shows whose body `match` accepts. */
function nextText(client: ParleyClient, match: (body: string) => boolean): Promise<StoredMessage> {
  return new Promise((resolve) => {
    const off = client.events.on('message', (message) => {
      if (message.direction !== 'incoming' || !match(message.body)) return;
      off();
      resolve(message);
    });
  });
}

/**
 * `lanes` pairs of new accounts on the server at `serverUrl`, each pair with
 * a session already started (one text each way), so that the run measures
 * messages and not session setup.
 */
export async function sdkWorkload(serverUrl: string, lanes: number, sink: Sink): Promise<Attached & { close(): Promise<void> }> {
  const run = ++runs;
  const clients = await inBatches(2 * lanes, 'SDK clients registered', async (i) => {
    const client = await openClient(serverUrl, `sdk${run}_${i}`);
    await client.sync();
    return client;
  });
  const close = () => Promise.all(clients.map((client) => client.close())).then(() => undefined);
  try {
    await inBatches(lanes, 'SDK sessions started', async (lane) => {
      const [sender, recipient] = [clients[lane]!, clients[lanes + lane]!];
      const arrived = nextText(recipient, (body) => body === 'hello');
      await sender.sendText(recipient.username, 'hello');
      await arrived;
      const answered = nextText(sender, (body) => body === 'hi');
      await recipient.sendText(sender.username, 'hi');
      await answered;
    });
  } catch (error) {
    await close();
    throw error;
  }

  const offs = clients.slice(lanes).map((recipient) =>
    recipient.events.on('message', (message) => {
      if (message.direction !== 'incoming' || message.kind !== 'text') return;
      const [sentAt, lane] = message.body.split(' ').map(Number);
      if (sentAt === undefined || lane === undefined || clients[lanes + lane] !== recipient) {
        sink.failed(new Error(`SDK recipient ${recipient.username}: an unexpected text`));
        return;
      }
      sink.delivered(sentAt, performance.now());
    }),
  );
  const detach = () => {
    for (const off of offs) off();
  };
  return {
    lanes: clients.slice(0, lanes).map((sender, lane) => ({
      send: (sentAt) => {
        sender.sendText(clients[lanes + lane]!.username, `${sentAt} ${lane}`).then(
          () => {
            sink.completed(lane);
          },
          (error: unknown) => {
            sink.failed(error as Error);
          },
        );
      },
    })),
    // The SDK acknowledges what it has processed; the server's mailboxes then empty, receipts included.
    settle: () => settled(serverUrl, { pending: 0 }),
    detach,
    close,
  };
}
