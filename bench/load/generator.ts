/**
 * The load generator: its own process (so that its sockets, up to 10,000 to
 * a server and as many echo clients, count against its own file limit and
 * its event loop is not the suite's), run by bench/load/index.ts. It holds
 * the accounts, their connections and bench/server's Driver, and answers one
 * command (commands.ts) at a time over the IPC channel. Progress goes to stderr.
 */
import { once } from 'node:events';

import type WebSocket from 'ws';

import { Driver, type RunResult, type Workload } from '../server/driver.js';
import { echoWorkload } from '../server/echo.js';
import { AccountMaker, connect, inBatches, login, register } from './accounts.js';
import type { Answer, Command, DrainAnswer, RunAnswer } from './commands.js';
import { drain } from './drain.js';
import { sdkWorkload } from './sdk.js';
import { BODY_BYTES, buildSessions, opaqueFrameBytes, opaqueWorkload, protocolWorkload } from './workloads.js';

let maker = new AccountMaker(0, 0);
/** Made so far: all of them once the first server has registered them. */
const accounts = () => maker.accounts;
let server: { url: string; wsUrl: string } | undefined;
/** Open connections, account i's at index i; always a prefix of the accounts. */
const sockets: WebSocket[] = [];
const tokens = new Map<number, Uint8Array>();
const driver = new Driver();

const current = () => {
  if (server === undefined) throw new Error('no server registered');
  return server;
};

async function closeFrom(downTo: number): Promise<void> {
  const closing = sockets.splice(downTo);
  await Promise.all(
    closing.map((socket) => {
      socket.removeAllListeners();
      socket.close(1000);
      return once(socket, 'close');
    }),
  );
}

type Loaded = Workload & { detach?(): void; close?(): Promise<void> };

async function load(command: Extract<Command, { op: 'run' | 'open' }>): Promise<Loaded> {
  if (command.workload === 'echo') {
    if (command.echoUrl === undefined) throw new Error('an echo run needs echoUrl');
    return echoWorkload(command.echoUrl, command.lanes, opaqueFrameBytes(accounts()[0]!), BODY_BYTES, driver);
  }
  if (command.workload === 'sdk') return sdkWorkload(current().url, command.lanes, driver);
  const make = command.workload === 'opaque' ? opaqueWorkload : protocolWorkload;
  return make(current().url, sockets, accounts(), command.lanes, driver);
}

async function unload(workload: Loaded): Promise<void> {
  workload.detach?.();
  await workload.close?.();
}

async function openOnly(command: Extract<Command, { op: 'open' }>): Promise<RunResult> {
  const workload = await load(command);
  try {
    return await driver.openLoop(workload, command.rate, command.timing);
  } finally {
    await unload(workload);
  }
}

async function run(command: Extract<Command, { op: 'run' }>): Promise<RunAnswer> {
  const workload = await load(command);
  try {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const closed = await driver.closedLoop(workload, command.inFlight, command.timing);
    const used = process.cpuUsage(cpu);
    const clientCores = (used.user + used.system) / 1000 / (performance.now() - started);
    if (!command.open) return { closed, clientCores };
    const offered = closed.rate / 2;
    const open = await driver.openLoop(workload, offered, command.timing);
    return { closed, open, offered, clientCores };
  } finally {
    await unload(workload);
  }
}

async function handle(command: Command): Promise<unknown> {
  const started = performance.now();
  const elapsed = () => ({ ms: performance.now() - started });
  switch (command.op) {
    case 'prepare': {
      maker = new AccountMaker(command.count, command.keptCount);
      await inBatches(command.keptCount, 'keys made (with stores)', (i) => maker.get(i));
      await buildSessions(accounts(), command.keptCount / 2);
      return elapsed();
    }
    case 'register': {
      server = { url: command.url, wsUrl: command.wsUrl };
      await inBatches(maker.count, 'accounts registered', async (i) => {
        await register(command.url, await maker.get(i));
      });
      return elapsed();
    }
    case 'use':
      server = { url: command.url, wsUrl: command.wsUrl };
      return elapsed();
    case 'login': {
      const { url } = current();
      await inBatches(command.upTo, 'logged in', async (i) => tokens.set(i, await login(url, accounts()[i]!)), sockets.length);
      return elapsed();
    }
    case 'connect': {
      const { url, wsUrl } = current();
      const opened = await inBatches(
        command.upTo,
        'connected',
        async (i) => {
          const account = accounts()[i]!;
          const token = tokens.get(i) ?? (await login(url, account));
          tokens.delete(i);
          return connect(wsUrl, account, token);
        },
        sockets.length,
      );
      sockets.push(...opened);
      return elapsed();
    }
    case 'disconnect':
      await closeFrom(command.downTo);
      return elapsed();
    case 'run':
      return run(command);
    case 'open':
      return openOnly(command);
    case 'drain': {
      const { url, wsUrl } = current();
      const target = accounts()[maker.count - 1]!;
      if (sockets.length >= maker.count) throw new Error('the drain target must be offline');
      return drain(url, wsUrl, sockets.slice(0, command.senders), target, command.depth) satisfies Promise<DrainAnswer>;
    }
    case 'reset':
      await closeFrom(0);
      tokens.clear();
      server = undefined;
      return elapsed();
  }
}

process.on('message', (message: { id: number; command: Command }) => {
  const reply = (answer: Answer) => process.send?.(answer);
  handle(message.command).then(
    (result) => reply({ id: message.id, ok: true, result }),
    (error: unknown) => reply({ id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});
process.on('disconnect', () => {
  process.exit(0);
});
