/**
 * A small, honest timer for benchmarks: warm up, then time batches until a
 * time budget is spent, and report the median batch's microseconds per
 * operation. Figures from one run are compared only with figures from the
 * same run.
 */

export interface Measurement {
  /** Median microseconds per operation across batches. */
  readonly microseconds: number;
  readonly operations: number;
}

export interface MeasureOptions {
  /** Wall-clock budget for timed batches, in milliseconds. */
  readonly budgetMs?: number;
  /** Minimum number of timed batches. */
  readonly minBatches?: number;
}

/** Times `operation` and returns the median µs per call. */
export async function measure(operation: () => Promise<unknown>, options: MeasureOptions = {}): Promise<Measurement> {
  const budgetMs = options.budgetMs ?? 400;
  const minBatches = options.minBatches ?? 5;

  // Warm-up, and a batch size that makes one batch take about 1/20 of the budget.
  let batch = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < batch; i++) await operation();
    const elapsed = performance.now() - start;
    if (elapsed >= budgetMs / 20 || batch >= 1 << 20) break;
    batch *= 2;
  }

  const perOp: number[] = [];
  const deadline = performance.now() + budgetMs;
  let operations = 0;
  while (perOp.length < minBatches || performance.now() < deadline) {
    const start = performance.now();
    for (let i = 0; i < batch; i++) await operation();
    perOp.push(((performance.now() - start) * 1000) / batch);
    operations += batch;
  }
  perOp.sort((a, b) => a - b);
  return { microseconds: perOp[Math.floor(perOp.length / 2)] as number, operations };
}

/** Formats microseconds with sensible precision. */
export function formatMicros(us: number): string {
  if (us >= 1000) return `${(us / 1000).toFixed(2)} ms`;
  if (us >= 10) return `${us.toFixed(1)} µs`;
  return `${us.toFixed(2)} µs`;
}

/** Prints a table with left-aligned first column and right-aligned others. */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}
