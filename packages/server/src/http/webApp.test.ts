/**
 * The web client's files, served by a real server process: at their paths and
 * `/`, under the Content-Security-Policy, cached by content, and nothing else.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { freshStorage, spawnServer, type ServerProcess, type Storage } from '../../../../testing/server.js';
import { CONTENT_SECURITY_POLICY } from './webApp.js';

const web = mkdtempSync(join(tmpdir(), 'parley-web-root-'));
let storage: Storage;
let server: ServerProcess;

beforeAll(async () => {
  mkdirSync(join(web, 'assets'));
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>Parley</title><script type="module" src="/assets/index-abc.js"></script>');
  writeFileSync(join(web, 'assets', 'index-abc.js'), 'console.log("parley")');
  writeFileSync(join(web, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  storage = await freshStorage('sqlite');
  server = await spawnServer(storage, ['--web', web]);
});

afterAll(async () => {
  await server.stop();
  await storage.drop();
  rmSync(web, { recursive: true, force: true });
});

describe('the web client, served with --web', () => {
  it('serves the page at / under a policy with no inline script, no eval and no other origin', async () => {
    const answer = await fetch(`${server.url}/`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(answer.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-|\*|https?:/);
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    expect(answer.headers.get('cache-control')).toBe('no-cache');
    expect(await answer.text()).toContain('<title>Parley</title>');
    expect(server.output()).toContain(`Parley on the web: open ${server.url}/`);
  });

  it('serves assets by their hashed names for a year, and answers 304 to a matching ETag', async () => {
    const asset = await fetch(`${server.url}/assets/index-abc.js`);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = asset.headers.get('etag')!;
    expect((await fetch(`${server.url}/assets/index-abc.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${server.url}/favicon.svg`)).headers.get('content-type')).toBe('image/svg+xml');
  });

  it('serves nothing but its files: other paths are the API’s 404, and the API is unchanged', async () => {
    for (const path of ['/index.html', '/assets/', '/assets/../index.html', '/etc/passwd', '/assets/missing.js']) {
      const answer = await fetch(`${server.url}${path}`);
      expect(answer.status, path).toBe(404);
    }
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('refuses to start on a folder that is not a built web client', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'parley-web-empty-'));
    try {
      await expect(spawnServer(storage, ['--web', empty])).rejects.toThrow(/holds no index\.html: build the web client first/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
