/**
 * A reporter that bounds the whole test run. A test that hangs past its own
 * timeout (a blocked event loop, a worker that never exits) would otherwise
 * hold CI until CI's own limit, with nothing printed to say where. After
 * PARLEY_TEST_RUN_MINUTES (default 30) this prints the test files still
 * running and how long each has run, and ends the run as a failure.
 */
import type { Reporter, TestModule } from 'vitest/node';

const DEFAULT_MINUTES = 30;

export default class Watchdog implements Reporter {
  readonly #running = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  onInit(): void {
    const minutes = Number(process.env['PARLEY_TEST_RUN_MINUTES'] ?? DEFAULT_MINUTES);
    this.#timer = setTimeout(() => { this.#expire(minutes); }, minutes * 60_000);
    this.#timer.unref();
  }

  onTestModuleStart(module: TestModule): void {
    this.#running.set(module.moduleId, Date.now());
  }

  onTestModuleEnd(module: TestModule): void {
    this.#running.delete(module.moduleId);
  }

  onTestRunEnd(): void {
    clearTimeout(this.#timer);
  }

  #expire(minutes: number): void {
    const now = Date.now();
    const lines = [...this.#running].map(([file, since]) => `  ${file} (running for ${Math.round((now - since) / 1000)} s)`);
    process.stderr.write(
      `\n[parley] the test run passed its bound of ${minutes} minutes (PARLEY_TEST_RUN_MINUTES); still running:\n${lines.join('\n') || '  (no test file: the run hangs between files or in teardown)'}\n`,
    );
    process.exit(1);
  }
}
