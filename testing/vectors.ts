/**
 * Where the shared test vectors live, for every package's tests.
 *
 * Vectors are read in place from `PARLEY_VECTORS` or `../shared/vectors/`
 * (beside the clone) and never copied into the repository. On a user's fresh
 * clone they are absent: suites that need them skip, with the reason in their
 * title. CI sets `PARLEY_REQUIRE_VECTORS=1`, which turns their absence into a failure.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = process.env['PARLEY_VECTORS'] ?? join(repoRoot, '..', 'shared', 'vectors');

export const vectorsRoot = root;
export const vectorsAvailable = existsSync(root);

if (!vectorsAvailable) {
  if (process.env['PARLEY_REQUIRE_VECTORS'] === '1') {
    throw new Error(`PARLEY_REQUIRE_VECTORS=1 but no test vectors at ${root} (set PARLEY_VECTORS)`);
  }
  console.warn(`[parley] no test vectors at ${root}: vector suites are SKIPPED (set PARLEY_VECTORS to run them)`);
}

/** A suite title that says why it is skipped when the vectors are missing. */
export function vectorSuiteTitle(title: string): string {
  return vectorsAvailable ? title : `${title} (SKIPPED: no test vectors at ${root}; set PARLEY_VECTORS)`;
}

/** Parses a JSON file below the vectors folder. */
export function readVectorJson(relativePath: string): unknown {
  return JSON.parse(readFileSync(join(root, relativePath), 'utf8'));
}
