/**
 * Reads a Parley server's Prometheus metrics (served to loopback), for the
 * server-side view of a run: CPU seconds, envelopes stored, group commits.
 */

/** Every sample of the exposition, summed over labels: name → value. */
export async function scrape(url: string): Promise<Map<string, number>> {
  const response = await fetch(`${url}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
    if (match === null) continue;
    const [, name, value] = match as unknown as [string, string, string];
    samples.set(name, (samples.get(name) ?? 0) + Number(value));
  }
  return samples;
}

/** What the server did between two scrapes. */
export interface ServerView {
  /** Server CPU (user + system) per envelope stored, in µs. */
  readonly cpuPerEnvelopeUs: number;
  /** Envelopes per group commit. */
  readonly envelopesPerCommit: number;
  /** Mean time to store one batch, in ms. */
  readonly commitMs: number;
}

export function serverView(before: Map<string, number>, after: Map<string, number>): ServerView {
  const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  const stored = delta('parley_envelopes_stored_total');
  const batches = delta('parley_write_batch_seconds_count');
  return {
    cpuPerEnvelopeUs: (delta('parley_process_cpu_seconds_total') * 1e6) / stored,
    envelopesPerCommit: stored / batches,
    commitMs: (delta('parley_write_batch_seconds_sum') * 1000) / batches,
  };
}
