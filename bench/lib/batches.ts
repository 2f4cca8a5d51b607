/** Setup work (registering, logging in, connecting many devices) run a few at a time. */

export interface BatchOptions {
  /** How many tasks run at once. */
  readonly concurrency: number;
  /** Names the work in progress lines on stderr; none without it. */
  readonly what?: string;
  /** A progress line after at least this many more are done (and at the end). */
  readonly reportEvery?: number;
  /** The first index (tasks run for first…count−1). */
  readonly first?: number;
}

/** Runs `task` for first…count−1, `concurrency` at a time, in order; resolves with the results. */
export async function inBatches<T>(count: number, task: (i: number) => Promise<T>, options: BatchOptions): Promise<T[]> {
  const { concurrency, what, reportEvery = 100, first = 0 } = options;
  const out: T[] = [];
  const started = performance.now();
  const total = count - first;
  let reported = 0;
  for (let start = first; start < count; start += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, count - start) }, (_, j) => task(start + j));
    out.push(...(await Promise.all(batch)));
    if (what !== undefined && (out.length - reported >= reportEvery || out.length === total)) {
      reported = out.length;
      process.stderr.write(`\r  ${what}: ${out.length}/${total} (${((performance.now() - started) / 1000).toFixed(1)} s)${out.length === total ? '\n' : ''}`);
    }
  }
  return out;
}
