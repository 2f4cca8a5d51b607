/**
 * Every decoder of untrusted bytes, fuzzed: a bounded mutation loop over each
 * target's valid seeds (PARLEY_FUZZ_RUNS inputs, DEFAULT_RUNS by default,
 * times the target's `runShare`: a tenth where each input is a request), then
 * a replay of every regression seed saved under `seeds/<target>/`. Each input
 * must decode or be refused with the target's typed error, in bounded time
 * and memory. `npm run fuzz -- --minutes N` runs the same targets for longer.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { check, checkSeeds, formatFailure, fuzz, savedSeeds, type Harness } from './engine.js';
import { targets } from './targets.js';

/** Enough to reach past the first field of every seed, within ~45 s for all targets on a 2-core machine. */
const DEFAULT_RUNS = 1_500;
const runs = Number(process.env['PARLEY_FUZZ_RUNS'] ?? DEFAULT_RUNS);

describe.each(targets)('$name', (target) => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await target.open();
    return () => harness.close?.();
  });

  it(`fuzz: ${target.title} decodes or refuses with a typed error`, async () => {
    await checkSeeds(target, harness);
    const report = await fuzz(target, harness, { runs: Math.ceil(runs * (target.runShare ?? 1)) });
    if (report.failure !== undefined) expect.fail(formatFailure(report));
    // The seeds decode (checkSeeds); mutations of them must be refused at times, or the loop says little.
    expect(report.refused).toBeGreaterThan(0);
  });

  const regressions = savedSeeds(target.name);
  if (regressions.length > 0) {
    it(`fuzz: ${target.title} handles every saved regression seed`, async () => {
      for (const [file, input] of regressions) await expect(check(target, harness, input), file).resolves.toMatch(/^(decoded|refused)$/);
    });
  }
});
