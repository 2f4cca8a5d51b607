/**
 * Builds the web client into dist/, which parley-server serves (`--web`).
 * In development (`npm run dev:web`), Vite serves the page and passes /v1 to
 * a Parley server, so the page and the API share one origin as in production.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

const server = process.env['PARLEY_DEV_SERVER'] ?? 'http://127.0.0.1:8787';

/** After a build, one line with what a browser downloads, gzipped: the page's script, the worker (the SDK and its crypto), the styles. */
function bundleSize(): Plugin {
  let assets = '';
  return {
    name: 'parley-bundle-size',
    apply: 'build',
    configResolved(config) {
      assets = resolve(config.root, config.build.outDir, config.build.assetsDir);
    },
    closeBundle() {
      const sizes = { page: 0, worker: 0, styles: 0 };
      for (const file of readdirSync(assets)) {
        const gzipped = gzipSync(readFileSync(join(assets, file))).length;
        if (file.endsWith('.css')) sizes.styles += gzipped;
        else if (file.startsWith('parley.worker')) sizes.worker += gzipped;
        else if (file.endsWith('.js')) sizes.page += gzipped;
      }
      const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
      this.info(`bundle, gzipped: page ${kb(sizes.page)}, worker ${kb(sizes.worker)} (SDK and crypto, off the main thread), styles ${kb(sizes.styles)}`);
    },
  };
}

export default defineConfig({
  root: import.meta.dirname,
  plugins: [react(), bundleSize()],
  worker: { format: 'es' },
  build: {
    outDir: process.env['PARLEY_WEB_OUT'] ?? 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No inline module-preload polyfill: the Content-Security-Policy allows no inline script.
    modulePreload: { polyfill: false },
    // Gzipped sizes, printed per file: the bundle size stays in view.
    reportCompressedSize: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: { '/v1': { target: server, ws: true } },
  },
});
