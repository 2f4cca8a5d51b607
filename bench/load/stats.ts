/**
 * The load bench's pure arithmetic: how many sends each lane keeps in flight,
 * a process's resident memory from /proc, memory per connection, and rates.
 * No I/O here, so it is unit-tested (stats.test.ts).
 */

/** Sends in flight in all, in the closed loop, at any connection count. */
export const CLOSED_LOOP_IN_FLIGHT = 1_000;

/**
 * Sends each of `lanes` senders keeps in flight in the closed loop: about
 * CLOSED_LOOP_IN_FLIGHT in all, and at least one each (so with more lanes than
 * that, every lane has one).
 */
export function inFlightPerLane(lanes: number): number {
  if (!Number.isInteger(lanes) || lanes < 1) throw new RangeError(`lanes must be a positive integer, not ${lanes}`);
  return Math.max(1, Math.round(CLOSED_LOOP_IN_FLIGHT / lanes));
}

/** VmRSS, in bytes, from the text of /proc/<pid>/status. @throws if it has none. */
export function parseVmRss(status: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error('no VmRSS line in the process status');
  return Number(match[1]) * 1024;
}

/** Bytes per connection: the growth of resident memory divided by the connections added. */
export function bytesPerConnection(before: number, after: number, connections: number): number {
  if (connections <= 0) throw new RangeError('connections must be positive');
  return (after - before) / connections;
}

/** Items per second for `count` items in `ms` milliseconds. */
export const perSecond = (count: number, ms: number): number => (count * 1000) / ms;

/** Splits `total` into `parts` integer shares that differ by at most one. */
export function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}
