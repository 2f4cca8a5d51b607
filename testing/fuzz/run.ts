/**
 * `npm run fuzz -- --minutes N [--target NAME]`: fuzzes every target (or one)
 * round-robin for N minutes, in slices, printing a line per slice (target,
 * inputs so far, inputs per second, failures). Failing inputs are saved as
 * regression seeds under `testing/fuzz/seeds/`, where `npm test` replays
 * them; the exit code is 1 if anything failed.
 */
import { parseArgs } from 'node:util';

import { checkSeeds, formatFailure, fuzz, FuzzFailure, type FuzzTarget, type Harness } from './engine.js';
import { targets } from './targets.js';

/** A slice is long enough to amortize fast-check's start, short enough that every target gets turns in a few minutes. */
const MAX_SLICE_MS = 10_000;
const MIN_SLICE_MS = 1_000;

interface Tally {
  runs: number;
  ms: number;
  failures: number;
}

function options(): { minutes: number; chosen: readonly FuzzTarget[] } {
  const { values } = parseArgs({ options: { minutes: { type: 'string', default: '1' }, target: { type: 'string' } } });
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, not ${values.minutes}`);
  const chosen = values.target === undefined ? targets : targets.filter((t) => t.name === values.target);
  if (chosen.length === 0) throw new Error(`no target named ${values.target}; there are: ${targets.map((t) => t.name).join(', ')}`);
  return { minutes, chosen };
}

/** Opens each target into `open` (so that whatever opened is closed, even if a later one fails) and checks its seeds, once: a server target's seeds succeed only once. */
async function openAll(chosen: readonly FuzzTarget[], open: Map<FuzzTarget, Harness>): Promise<void> {
  for (const target of chosen) {
    const harness = await target.open();
    open.set(target, harness);
    await checkSeeds(target, harness);
  }
}

function progress(target: FuzzTarget, tally: Tally): string {
  const rate = tally.ms === 0 ? 0 : Math.round((tally.runs / tally.ms) * 1000);
  return `${target.name.padEnd(34)} ${String(tally.runs).padStart(10)} inputs ${String(rate).padStart(7)}/s ${tally.failures} failures`;
}

async function main(): Promise<number> {
  const { minutes, chosen } = options();
  const slice = Math.min(MAX_SLICE_MS, Math.max(MIN_SLICE_MS, (minutes * 60_000) / chosen.length));
  console.log(`fuzzing ${chosen.length} targets for ${minutes} min, ${Math.round(slice / 1000)} s at a time`);
  const open = new Map<FuzzTarget, Harness>();
  const tallies = new Map(chosen.map((t) => [t, { runs: 0, ms: 0, failures: 0 }]));
  try {
    await openAll(chosen, open);
    const deadline = Date.now() + minutes * 60_000;
    while (Date.now() < deadline) {
      for (const [target, harness] of open) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        const tally = tallies.get(target)!;
        const started = Date.now();
        const report = await fuzz(target, harness, { timeLimitMs: Math.min(slice, left), seed: Math.floor(Math.random() * 2 ** 31) });
        tally.runs += report.runs;
        tally.ms += Date.now() - started;
        if (report.failure !== undefined) {
          tally.failures++;
          console.log(formatFailure(report));
        }
        console.log(progress(target, tally));
      }
    }
  } catch (error) {
    if (!(error instanceof FuzzFailure)) throw error;
    console.log(formatFailure({ target: 'seeds', runs: 0, decoded: 0, refused: 0, failure: error }));
    return 1;
  } finally {
    for (const harness of open.values()) await harness.close?.();
  }
  const failures = [...tallies.values()].reduce((n, t) => n + t.failures, 0);
  console.log(`done: ${[...tallies.values()].reduce((n, t) => n + t.runs, 0)} inputs, ${failures} failures`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main();
