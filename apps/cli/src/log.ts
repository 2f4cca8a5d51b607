/**
 * `PARLEY_LOG=debug|info|warn|error`: the SDK's debug log, one JSON line per
 * event on stderr, for bug reports. It carries connection states, frame kinds
 * and sizes, error codes and device addresses; never a message, a key, a
 * token or a code (the SDK's log holds none, packages/client `log.ts`).
 */
import type { LogLevel, LogSink } from '@parley/client';

import { UsageError } from './commands.js';

/** The levels, least severe first: a threshold shows its own level and those after it. */
const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** The level `PARLEY_LOG` asks for (undefined: no log). @throws UsageError for a value that is not a level. */
export function logLevelFrom(value: string | undefined): LogLevel | undefined {
  if (value === undefined || value === '') return undefined;
  const level = LEVELS.find((l) => l === value.toLowerCase());
  if (level === undefined) throw new UsageError(`PARLEY_LOG is one of ${LEVELS.join(', ')} (got "${value}")`);
  return level;
}

/** A sink writing events at `threshold` or above to stderr, as JSON lines. */
export function stderrLog(threshold: LogLevel): LogSink {
  const shown = new Set(LEVELS.slice(LEVELS.indexOf(threshold)));
  return (level, event, fields) => {
    if (!shown.has(level)) return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
  };
}
