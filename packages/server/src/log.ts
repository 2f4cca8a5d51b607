/**
 * Logging: pino, JSON lines. Logs carry routes, status codes, counts and
 * errors — never message contents, keys, tokens or usernames, and no client
 * IP addresses unless the operator asks for them (`--log-ips`).
 */
import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';

/** The logger every part of the server takes (pino, typed as Fastify sees it). */
export type Logger = FastifyBaseLogger;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: null, // no hostname or pid in every line
    // Belt and braces: should any of these ever reach a log call, they are censored.
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers', '*.headers', 'body', '*.body'],
      censor: '[redacted]',
    },
  });
}
