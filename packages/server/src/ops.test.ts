/**
 * What an operator relies on: the command line, TLS, /healthz and /metrics,
 * and logs that hold no usernames, keys, tokens or addresses.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../testing/server.js';
import { http, TestAccount, to } from '../../../testing/device.js';

const serverBin = resolve(import.meta.dirname, '..', 'bin', 'parley-server.js');

/** Runs the command to completion: exit code and everything it printed. */
function run(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [serverBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  return new Promise((done) => {
    child.on('exit', (code) => {
      done({ code, output });
    });
  });
}

describe('parley-server command line', () => {
  it('prints its options for --help', async () => {
    const { code, output } = await run(['--help']);
    expect(code).toBe(0);
    expect(output).toContain('--tls-cert');
    expect(output).toContain('--database');
    expect(output).toContain('--redis');
  });

  it('refuses unknown options and bad values with a reason and the usage', async () => {
    const cases = [
      ['--no-such-option'],
      ['--port', 'eighty'],
      ['--database', 'mysql://x'],
      ['--tls-cert', 'a.pem'],
      ['--sqlite-sync', 'off'],
      ['--redis', 'http://x'],
      ['--redis', 'redis://127.0.0.1:6379'], // nodes share one PostgreSQL: SQLite cannot be shared
    ];
    for (const args of cases) {
      const { code, output } = await run(args);
      expect(code).toBe(2);
      expect(output).toMatch(/^parley-server: .+\n\nUsage:/);
    }
  });

  it('refuses plain HTTP off loopback unless told it sits behind a TLS proxy', async () => {
    const { code, output } = await run(['--host', '0.0.0.0', '--port', '0']);
    expect(code).toBe(1);
    expect(output).toContain('refusing plain HTTP on 0.0.0.0');
  });
});

describe('a running server', () => {
  let storage: Storage;
  let server: ServerProcess;

  beforeAll(async () => {
    storage = await freshStorage('sqlite');
    server = await spawnServer(storage, ['--log-level', 'info']);
  });
  afterAll(async () => {
    await server.stop();
    await storage.drop();
  });

  it('answers /healthz and counts connections, deliveries and errors in /metrics', async () => {
    expect(await http(server.url, 'GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    const alice = await TestAccount.register(server.url, 'metrics_alice');
    const bob = await TestAccount.register(server.url, 'metrics_bob');
    const sender = await alice.devices[0]!.connect(server.wsUrl);
    const inbox = await bob.devices[0]!.connect(server.wsUrl);
    expect((await sender.request([to(bob, () => new Uint8Array(8))])).kind).toBe('sent');
    await inbox.envelopes(1);
    const metrics = (await fetch(`${server.url}/metrics`).then((r) => r.text())).split('\n');
    const value = (name: string) => Number(metrics.find((line) => line.startsWith(`${name} `))?.split(' ')[1]);
    expect(value('parley_websocket_connections')).toBe(2);
    expect(value('parley_envelopes_stored_total')).toBe(1);
    expect(value('parley_envelopes_delivered_total')).toBe(1);
    expect(value('parley_inflight_envelopes')).toBe(1);
    expect(value('parley_mailbox_envelopes')).toBe(1);
    expect(metrics.some((line) => line.startsWith('parley_write_batch_seconds_count'))).toBe(true);
    await Promise.all([sender.close(), inbox.close()]);
  });

  it('logs routes and status codes, never usernames, keys, tokens or addresses', async () => {
    const carol = await TestAccount.register(server.url, 'secretive_carol');
    const token = await carol.devices[0]!.login();
    await http(server.url, 'GET', '/v1/keys', { token });
    await http(server.url, 'GET', '/v1/keys/secretive_carol/1', { token });
    await new Promise((done) => setTimeout(done, 200));
    const log = server.output();
    expect(log).toContain('"route":"/v1/keys/:username/:deviceId"');
    for (const secret of ['secretive_carol', token, Buffer.from(carol.identity.publicKey).toString('base64'), '127.0.0.1"']) {
      expect(log).not.toContain(secret);
    }
  });
});

describe('client addresses behind a proxy', () => {
  /** A registration that passes the schema (so it reaches the rate limit) and fails its signatures. */
  const bogus = () => {
    const b64 = (length: number) => Buffer.alloc(length, 1).toString('base64');
    const key = (length: number) => ({ keyId: 1, publicKey: b64(length), signature: b64(64) });
    return {
      identityKey: b64(33),
      deviceList: { list: b64(40), signature: b64(64) },
      signedPreKey: key(33),
      kyberLastResortKey: key(1569),
    };
  };
  const register = (url: string, forwardedFor: string) =>
    http(url, 'POST', '/v1/accounts', { body: bogus(), headers: { 'x-forwarded-for': forwardedFor } }).then((r) => r.status);

  it('rate-limits each forwarded client apart only when the proxy is trusted', async () => {
    for (const trusted of [true, false]) {
      const storage = await freshStorage('sqlite');
      const server = await spawnServer(storage, ['--registrations', '1', ...(trusted ? ['--trust-proxy', '127.0.0.1'] : [])]);
      try {
        expect(await register(server.url, '198.18.0.1')).toBe(400);
        expect(await register(server.url, '198.18.0.1')).toBe(429);
        // Another client: its own bucket if the proxy is believed, else the same (the peer's) bucket.
        expect(await register(server.url, '198.18.0.2')).toBe(trusted ? 400 : 429);
      } finally {
        await server.stop();
        await storage.drop();
      }
    }
  });
});

describe('heartbeat', () => {
  it('drops a connection that stops answering pings, and keeps one that answers', async () => {
    const storage = await freshStorage('sqlite');
    const server = await spawnServer(storage, ['--heartbeat', '1']);
    try {
      const alice = await TestAccount.register(server.url, 'heartbeat_alice');
      const bob = await TestAccount.register(server.url, 'heartbeat_bob');
      const healthy = await alice.devices[0]!.connect(server.wsUrl);
      const silent = await bob.devices[0]!.connect(server.wsUrl);
      const tcp = (silent.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      tcp.pause(); // reads nothing more, so it never sees a ping nor answers one
      const connections = async () =>
        (await fetch(`${server.url}/metrics`).then((r) => r.text())).match(/^parley_websocket_connections (\d+)$/m)?.[1];
      expect(await connections()).toBe('2');
      let open = '2';
      for (let i = 0; i < 50 && open !== '1'; i++) {
        await new Promise((done) => setTimeout(done, 100));
        open = (await connections()) ?? '';
      }
      expect(open).toBe('1'); // the server dropped the silent one within a few intervals
      tcp.resume();
      expect((await silent.closed).code).toBe(1006); // without a close frame
      expect(healthy.socket.readyState).toBe(WebSocket.OPEN);
      expect((await healthy.request([to(bob, () => new Uint8Array(1))])).kind).toBe('sent');
      await healthy.close();
    } finally {
      await server.stop();
      await storage.drop();
    }
  });
});

describe('TLS', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'parley-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS and WSS with the given certificate', async () => {
    const storage = await freshStorage('sqlite');
    const server = await spawnServer(storage, ['--host', '127.0.0.1', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const body = await new Promise<string>((done, fail) => {
        request(`${server.url}/healthz`, { ca: readFileSync(join(dir, 'cert.pem')) }, (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => {
            text += chunk.toString();
          });
          response.on('end', () => {
            done(text);
          });
        })
          .on('error', fail)
          .end();
      });
      expect(JSON.parse(body)).toEqual({ status: 'ok' });
      const socket = new WebSocket(server.wsUrl, { ca: readFileSync(join(dir, 'cert.pem')) });
      await new Promise((done, fail) => socket.once('open', done).once('error', fail));
      expect(server.wsUrl).toMatch(/^wss:/);
      socket.close();
    } finally {
      await server.stop();
      await storage.drop();
    }
  });
});
