/**
 * The web client, served from the server's own origin: the files of a built
 * web app (apps/web's `vite build`), read once at start, under a strict
 * Content-Security-Policy. The policy is the web client's promise not to hand
 * the server a plaintext made concrete: scripts come only from this origin (no
 * inline script, no eval), and the page may connect nowhere but here.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

import type { FastifyInstance, FastifyReply } from 'fastify';

import { ServerError } from '../errors.js';

/** No inline script or style, no eval, no plug-ins, no framing; connections, workers and images only from this origin. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Sent with every file of the web app. */
const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
} as const;

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** A web app bigger than this is not what `vite build` makes; refusing it keeps a wrong --web folder from filling memory. */
const MAX_WEB_APP_BYTES = 64 * 1024 * 1024;

interface WebFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  /** Vite names the files under assets/ by their content hash: they never change, so browsers may keep them. */
  readonly immutable: boolean;
}

/** Reads every file under `root` into memory. @throws Error naming the problem (no index.html, too big). */
export function loadWebApp(root: string): Map<string, WebFile> {
  const files = new Map<string, WebFile>();
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(path);
        continue;
      }
      if (!entry.isFile()) continue;
      total += statSync(path).size;
      if (total > MAX_WEB_APP_BYTES) throw new Error(`the web app in ${root} is over ${MAX_WEB_APP_BYTES} bytes; is --web the build folder?`);
      const body = readFileSync(path);
      const route = `/${relative(root, path).split(sep).join('/')}`;
      files.set(route, {
        body,
        type: TYPES[extname(path)] ?? 'application/octet-stream',
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        immutable: route.startsWith('/assets/'),
      });
    }
  };
  walk(root);
  if (!files.has('/index.html')) throw new Error(`${root} holds no index.html: build the web client first (npm run build --workspace @parley/web)`);
  return files;
}

/** Serves the web app's files at their paths, and its page at `/`. */
export function webAppRoutes(app: FastifyInstance, files: ReadonlyMap<string, WebFile>): void {
  const send = (reply: FastifyReply, file: WebFile, ifNoneMatch: string | undefined) => {
    void reply.headers(SECURITY_HEADERS).header('etag', file.etag);
    void reply.header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (ifNoneMatch === file.etag) return reply.code(304).send();
    return reply.type(file.type).send(file.body);
  };
  for (const [route, file] of files) {
    if (route === '/index.html') continue; // the page lives at /
    app.get(route, async (request, reply) => send(reply, file, request.headers['if-none-match']));
  }
  const page = files.get('/index.html');
  if (page === undefined) throw new ServerError('INTERNAL', 'a web app without index.html');
  app.get('/', async (request, reply) => send(reply, page, request.headers['if-none-match']));
}
