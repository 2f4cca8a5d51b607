/**
 * The benchmark suite: runs every part, each in its own process so that none
 * disturbs another's heap or JIT, and writes one report from the run.
 *
 *   npm run bench                              the whole suite
 *   npm run bench -- --quick                   reduced workloads, under two minutes on 2 cores
 *   npm run bench -- --only crypto,protocol    some parts, in suite order; the report keeps the
 *                                              others' figures from the previous run, marked as such
 *
 * Each part is `tsx <part>/index.ts --section-out <file> [--quick]`; it prints
 * its own tables as it goes and writes its Section as JSON (bench/lib/report.ts,
 * `runPart`). A part that fails, or writes no section, is recorded as missing
 * with the reason; the others still run, and the suite exits 1.
 *
 * Outputs, all from this run: bench/results/latest.json (machine and every
 * section), docs/BENCHMARKS.md (written whole) and docs/benchmarks/<plot>.svg
 * (stale SVGs from earlier runs are removed).
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { benchmarksMarkdown, type Earlier, type Machine, type PartResult } from './lib/markdown.js';
import { renderPlot } from './lib/plot.js';
import type { Section } from './lib/report.js';

/** The parts, in the order they run and appear in the report: each is bench/<id>/index.ts. */
export const PARTS = ['crypto', 'protocol', 'server', 'cluster', 'load', 'groups'] as const;

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const RESULTS = path.join(BENCH, 'results', 'latest.json');
const MARKDOWN = path.join(ROOT, 'docs', 'BENCHMARKS.md');
const PLOTS = path.join(ROOT, 'docs', 'benchmarks');

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});

const only = options.only?.split(',').map((id) => id.trim()).filter((id) => id !== '');
const unknown = only?.filter((id) => !(PARTS as readonly string[]).includes(id)) ?? [];
if (unknown.length > 0) {
  console.error(`bench: unknown part${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; the parts are ${PARTS.join(', ')}`);
  process.exit(2);
}
const selected = PARTS.filter((id) => only === undefined || only.includes(id));
/** Why a part did not run: `failed` when it ran and broke, so the suite exits non-zero. */
const notRun = (id: string, reason: string, seconds?: number): PartResult => ({ kind: 'missing', id, reason, ...(seconds === undefined ? {} : { seconds }) });

/** Runs `file` under tsx in its own Node process, output to our terminal; resolves to its exit code. */
function runChild(file: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], { cwd: BENCH, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      resolve(code ?? (signal === null ? 1 : 128));
    });
  });
}

/** What bench/results/latest.json holds. */
interface Results {
  readonly machine: Machine;
  readonly parts: readonly (Omit<Extract<PartResult, { kind: 'ran' }>, 'section'> | Extract<PartResult, { kind: 'missing' }>)[];
  readonly sections: readonly Section[];
}

/** The previous run's sections that `--only` leaves out of this one, by part, each with the run it comes from. */
async function earlierSections(): Promise<Map<string, PartResult>> {
  const kept = new Map<string, PartResult>();
  if (!existsSync(RESULTS)) return kept;
  const previous = JSON.parse(await readFile(RESULTS, 'utf8')) as Results;
  const { date, commit, quick } = previous.machine;
  for (const part of previous.parts) {
    const section = previous.sections.find((s) => s.id === part.id);
    if (part.kind !== 'ran' || section === undefined) continue;
    const earlier: Earlier = part.earlier ?? { date, commit, quick };
    kept.set(part.id, { kind: 'ran', id: part.id, seconds: part.seconds, section, earlier });
  }
  return kept;
}

async function runPartProcess(id: string, scratch: string): Promise<PartResult> {
  const file = path.join(BENCH, id, 'index.ts');
  if (!existsSync(file)) return notRun(id, `bench/${id}/index.ts does not exist`);
  const out = path.join(scratch, `${id}.json`);
  const started = performance.now();
  const code = await runChild(file, ['--section-out', out, ...(options.quick ? ['--quick'] : [])]);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) return notRun(id, `failed: bench/${id} exited with code ${code}`, seconds);
  if (!existsSync(out)) return notRun(id, `failed: bench/${id} exited without writing its section`, seconds);
  const section = JSON.parse(await readFile(out, 'utf8')) as Section;
  return { kind: 'ran', id, seconds, section };
}

function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${commit} (with uncommitted changes)` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

function machine(date: Date): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    date: date.toISOString(),
    commit: gitCommit(),
    quick: options.quick,
  };
}

const started = new Date();
const wall = performance.now();
console.log(`bench: ${options.quick ? 'quick' : 'full'} run of ${selected.join(', ')}\n`);
const scratch = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-'));
const results: PartResult[] = [];
const earlier = only === undefined ? new Map<string, PartResult>() : await earlierSections();
try {
  for (const id of PARTS) {
    if (!selected.includes(id)) {
      results.push(earlier.get(id) ?? notRun(id, 'not run (--only), and no earlier run to keep it from'));
      continue;
    }
    console.log(`\n━━ bench/${id} ━━`);
    const result = await runPartProcess(id, scratch);
    if (result.kind === 'missing') console.log(`\nbench: ${id} is missing from the report: ${result.reason}`);
    results.push(result);
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}

const info = machine(started);
const sections = results.flatMap((r) => (r.kind === 'ran' ? [r.section] : []));
await mkdir(path.dirname(RESULTS), { recursive: true });
await writeFile(
  RESULTS,
  `${JSON.stringify({ machine: info, parts: results.map((r) => (r.kind === 'ran' ? { kind: r.kind, id: r.id, seconds: r.seconds, ...(r.earlier === undefined ? {} : { earlier: r.earlier }) } : r)), sections } satisfies Results, null, 2)}\n`,
);

await mkdir(PLOTS, { recursive: true });
const plots = sections.flatMap((s) => s.plots);
for (const plot of plots) await writeFile(path.join(PLOTS, `${plot.id}.svg`), renderPlot(plot));
const written = new Set(plots.map((p) => `${p.id}.svg`));
for (const name of await readdir(PLOTS)) {
  if (name.endsWith('.svg') && !written.has(name)) await rm(path.join(PLOTS, name));
}
await writeFile(MARKDOWN, benchmarksMarkdown(info, results));

const missing = results.filter((r) => r.kind === 'missing');
const kept = results.filter((r) => r.kind === 'ran' && r.earlier !== undefined);
console.log(`\nbench: ${selected.length - missing.length} of ${selected.length} parts ran in ${((performance.now() - wall) / 1000).toFixed(1)} s`);
for (const m of missing) console.log(`  ${m.id}: ${m.reason}`);
if (kept.length > 0) console.log(`  kept from the previous run: ${kept.map((r) => r.id).join(', ')}`);
console.log(`wrote ${path.relative(ROOT, RESULTS)}, ${path.relative(ROOT, MARKDOWN)} and ${plots.length} plot${plots.length === 1 ? '' : 's'} in ${path.relative(ROOT, PLOTS)}/`);
if (missing.some((m) => m.reason.startsWith('failed:'))) process.exitCode = 1;
