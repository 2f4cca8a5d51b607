/**
 * `npm run dev:web`: a Parley server and Vite's dev server together. The
 * server keeps its data in ./parley-dev-data (not the data of `npm start`);
 * Vite serves the page with hot reload and passes /v1 (HTTP and WebSocket)
 * to the server, so the page and the API share one origin as in production.
 * Arguments after `--` go to parley-server (`-- --database postgres://…`).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { createServer } from 'vite';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const server = spawn(process.execPath, ['packages/server/bin/parley-server.js', '--port', '0', '--data', 'parley-dev-data', ...process.argv.slice(2)], {
  cwd: repo,
  stdio: ['ignore', 'pipe', 'inherit'],
});

const serverUrl = await new Promise<string>((resolve, reject) => {
  let output = '';
  server.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    process.stdout.write(chunk);
    const match = /Parley server listening on (\S+)/.exec(output);
    if (match !== null) resolve(match[1]!);
  });
  server.on('exit', (code) => { reject(new Error(`parley-server exited (${code}) before it listened`)); });
});

process.env['PARLEY_DEV_SERVER'] = serverUrl;
const vite = await createServer({ configFile: fileURLToPath(new URL('../vite.config.ts', import.meta.url)) });
await vite.listen();
vite.printUrls();
process.stdout.write(`Parley web client in development: open ${vite.resolvedUrls?.local[0] ?? 'the URL above'} (API at ${serverUrl})\n`);

const stop = () => {
  server.kill('SIGTERM');
  void vite.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
