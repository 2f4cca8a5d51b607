import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'bench/**/*.test.ts', 'testing/**/*.test.ts'],
    // Interop and vector suites do real work; the defaults are too tight on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The watchdog turns a hang into a failure that names the file, well inside CI's limit.
    reporters: ['default', './testing/watchdog.ts'],
  },
});
