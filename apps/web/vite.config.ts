/**
 * Builds the web client into dist/, which parley-server serves (`--web`).
 * In development (`npm run dev:web`), Vite serves the page and passes /v1 to
 * a Parley server, so the page and the API share one origin as in production.
 */
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const server = process.env['PARLEY_DEV_SERVER'] ?? 'http://127.0.0.1:8787';

export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
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
