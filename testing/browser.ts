/**
 * A real browser for tests: Debian's Chromium driven by playwright-core, and
 * a same-origin web server for the page under test, which serves the page
 * and its bundle (built by esbuild from testing/browser/entry.ts) and passes
 * /v1/* (HTTP and WebSocket) through to a Parley server, as a deployment
 * behind one origin would. Without Chromium the suites skip and say so;
 * PARLEY_REQUIRE_BROWSER=1 (set by .ci/run) makes that a failure.
 */
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

import { tunnel } from './tunnel.js';

const chromiumPath = process.env['PARLEY_CHROMIUM'] ?? '/usr/bin/chromium';
export const browserAvailable = existsSync(chromiumPath);
if (!browserAvailable && process.env['PARLEY_REQUIRE_BROWSER'] === '1') {
  throw new Error(`PARLEY_REQUIRE_BROWSER=1 but there is no Chromium at ${chromiumPath} (apt-get install chromium, or set PARLEY_CHROMIUM)`);
}
export const browserTitle = browserAvailable ? 'in Chromium' : `in Chromium (SKIPPED: no browser at ${chromiumPath}; apt-get install chromium)`;

/** Launches headless Chromium with the flags this machine's closed network needs. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** The test page's script: the client SDK and its browser platform, bundled for the browser. */
export async function bundleEntry(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('browser/entry.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

export interface Origin {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves the page at / and its script at /entry.js, and passes everything under /v1/ to `upstream`. */
export async function serveOrigin(upstream: string, script: string): Promise<Origin> {
  const target = new URL(upstream);
  const page = '<!doctype html><meta charset="utf-8"><title>Parley test</title><script type="module" src="/entry.js"></script>';
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/v1/') === true) {
      const forward = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.destroy());
      req.pipe(forward);
      return;
    }
    const [type, body] = req.url === '/entry.js' ? ['text/javascript', script] : ['text/html', page];
    res.writeHead(200, { 'content-type': type });
    res.end(body);
  });
  server.on('upgrade', (req, socket, head) => {
    tunnel(target, req, socket, head);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => { resolve(); });
      }),
  };
}
