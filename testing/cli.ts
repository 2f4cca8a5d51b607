/**
 * The `parley` command for tests: real processes, one profile folder per
 * person under one home, run as a user would run them.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const cliBin = fileURLToPath(new URL('../apps/cli/bin/parley.js', import.meta.url));
const run = promisify(execFile);

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class Cli {
  readonly home = mkdtempSync(join(tmpdir(), 'parley-cli-'));

  /** The profile folder of `who`. */
  profile(who: string): string {
    return join(this.home, who);
  }

  /** Runs `parley` as `who`; resolves with its exit code and output, whatever the code. */
  async run(who: string, ...args: string[]): Promise<CliResult> {
    try {
      const { stdout, stderr } = await run(process.execPath, [cliBin, '--profile', this.profile(who), ...args], { timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  /** Starts `parley` as `who` and leaves it running (for `chat`, `devices link` and the like). */
  spawn(who: string, ...args: string[]): ChildProcessWithoutNullStreams {
    return spawn(process.execPath, [cliBin, '--profile', this.profile(who), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  }

  remove(): void {
    rmSync(this.home, { recursive: true, force: true });
  }
}
