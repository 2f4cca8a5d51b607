/**
 * The fuzz engine: a fast-check mutation loop over a target's valid seeds.
 * Every input must either decode or be refused with the error the decoder
 * documents; an input that throws anything else, takes longer than the
 * target's hang bound, or makes the heap jump by more than
 * MAX_INPUT_HEAP_GROWTH is a failure, shrunk by fast-check and saved as a
 * regression seed (`seeds/<target>/<sha256 prefix>.bin`). A whole run must
 * also leave the heap, after a garbage collection, within
 * MAX_RETAINED_HEAP_GROWTH of where it started.
 *
 * What it cannot catch: a decoder that never returns blocks the thread, so
 * no timer here can fire; Vitest's testTimeout (and the runner's own
 * deadline) is what turns that into a failure, naming the target but not the input.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import fc from 'fast-check';

import { applyMutations, mutations } from '../fuzz.js';

/** A decoder of untrusted bytes, ready to run: what a target's `open` gives. */
export interface Harness {
  /** Valid inputs, made with the real encoders; every mutation starts from one. */
  readonly seeds: readonly Uint8Array[];
  /** More inputs the target knows how to make (structure-aware mutations, say), mixed in with the byte mutations. */
  readonly inputs?: fc.Arbitrary<Uint8Array>;
  /** Decodes one input: returns (or resolves) if it decoded, throws (or rejects) if refused. */
  decode(input: Uint8Array): unknown;
  /** Whether a thrown value is the refusal this decoder documents. */
  isTypedError(error: unknown): boolean;
  /** Releases what `open` took (a server). */
  close?(): Promise<void>;
}

/** One entry of the registry: a decoder of untrusted bytes, by name. */
export interface FuzzTarget {
  /** Folder and command-line name: letters, digits and dashes. */
  readonly name: string;
  /** What is decoded, as test titles say it. */
  readonly title: string;
  /** An input taking longer than this is a hang (HANG_MS unless the decoder does I/O or bounded heavy work). */
  readonly hangMs?: number;
  /** The share of a bounded run's inputs this target gets (1 unless each input is a request, which costs a thousand decodes). */
  readonly runShare?: number;
  open(): Promise<Harness>;
}

/**
 * Slower than this is a hang. Decoders are synchronous and take microseconds
 * on inputs of a few kilobytes; a second is three orders of magnitude of slack
 * for a busy 2-core machine, and still far below what a client or server could afford.
 */
export const HANG_MS = 1_000;
/** The most one input may grow the heap by while it is decoded: inputs are kilobytes, so this is a length field believed. */
export const MAX_INPUT_HEAP_GROWTH = 64 * 1024 * 1024;
/** The most a whole run may leave behind, after a garbage collection: more is a leak per input. */
export const MAX_RETAINED_HEAP_GROWTH = 32 * 1024 * 1024;

export type FailureKind = 'untyped error' | 'hang' | 'memory' | 'seed refused';

/** An input a decoder mishandled. */
export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
  readonly kind: FailureKind;
  readonly input: Uint8Array;

  constructor(kind: FailureKind, input: Uint8Array, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.input = input;
  }
}

export type Verdict = 'decoded' | 'refused';

/** What a run did: inputs tried, how many decoded and were refused, and the failure that stopped it, if any. */
export interface FuzzReport {
  readonly target: string;
  readonly runs: number;
  readonly decoded: number;
  readonly refused: number;
  readonly failure?: FuzzFailure;
  /** Where the failing input was saved. */
  readonly savedAs?: string;
}

/** V8's collector, reachable without `--expose-gc` on the command line. */
const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/** The heap in use; V8's own counter, read without a system call, so it can be read around every input. */
const heapUsed = () => getHeapStatistics().used_heap_size;

/**
 * Decodes one input and judges it.
 * @throws FuzzFailure for an untyped error, a hang or a heap jump.
 */
export async function check(target: FuzzTarget, harness: Harness, input: Uint8Array): Promise<Verdict> {
  const before = heapUsed();
  const started = performance.now();
  let verdict: Verdict;
  try {
    await harness.decode(input);
    verdict = 'decoded';
  } catch (error) {
    if (!harness.isTypedError(error)) throw new FuzzFailure('untyped error', input, `${target.title} threw ${describe(error)}`, { cause: error });
    verdict = 'refused';
  }
  const ms = performance.now() - started;
  const hangMs = target.hangMs ?? HANG_MS;
  if (ms > hangMs) throw new FuzzFailure('hang', input, `${target.title} took ${Math.round(ms)} ms on one input (at most ${hangMs})`);
  const grown = heapUsed() - before;
  if (grown > MAX_INPUT_HEAP_GROWTH) throw new FuzzFailure('memory', input, `${target.title} grew the heap by ${mib(grown)} on one input`);
  return verdict;
}

/** Checks that every seed decodes: a refused seed is a target that fuzzes nothing of what it claims. */
export async function checkSeeds(target: FuzzTarget, harness: Harness): Promise<void> {
  for (const seed of harness.seeds) {
    if ((await check(target, harness, seed)) !== 'decoded') throw new FuzzFailure('seed refused', seed, `${target.title} refuses its own seed`);
  }
}

/** Random bytes now and then; mostly mutations of seeds, and the target's own inputs when it has some. */
function inputsOf(harness: Harness): fc.Arbitrary<Uint8Array> {
  const mutated = fc.tuple(fc.constantFrom(...harness.seeds), mutations).map(([seed, changes]) => applyMutations(seed, changes));
  const random = fc.uint8Array({ maxLength: 2_048 });
  return harness.inputs === undefined
    ? fc.oneof({ weight: 9, arbitrary: mutated }, { weight: 1, arbitrary: random })
    : fc.oneof({ weight: 5, arbitrary: mutated }, { weight: 4, arbitrary: harness.inputs }, { weight: 1, arbitrary: random });
}

export interface FuzzOptions {
  /** Inputs to try (unbounded if only `timeLimitMs` is given). */
  readonly runs?: number;
  /** Stop after this long, whatever `runs` says. */
  readonly timeLimitMs?: number;
  /** fast-check's seed, for a reproducible run. */
  readonly seed?: number;
}

/**
 * Runs the mutation loop over `harness` and reports; a failing input, once
 * fast-check has shrunk it, is saved as a regression seed. Seeds are checked
 * by {@link checkSeeds}, once, not here: a server target's seeds succeed only once.
 */
export async function fuzz(target: FuzzTarget, harness: Harness, options: FuzzOptions): Promise<FuzzReport> {
  collectGarbage();
  const baseline = heapUsed();
  const counts = { decoded: 0, refused: 0 };
  let failure: FuzzFailure | undefined;
  const details = await fc.check(
    fc.asyncProperty(inputsOf(harness), async (input) => {
      try {
        counts[await check(target, harness, input)]++;
      } catch (error) {
        if (error instanceof FuzzFailure) failure = error; // the last one thrown is the shrunk one
        throw error;
      }
    }),
    {
      numRuns: options.runs ?? Number.MAX_SAFE_INTEGER,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.timeLimitMs === undefined ? {} : { plugins: [fc.interruptAfterTimeLimit(options.timeLimitMs)] }),
    },
  );
  const report = { target: target.name, runs: details.numRuns, ...counts };
  if (details.failed) {
    const found = failure ?? new FuzzFailure('untyped error', new Uint8Array(0), `fast-check failed: ${describe(details.errorInstance)}`);
    return { ...report, failure: found, savedAs: saveSeed(target.name, found.input) };
  }
  collectGarbage();
  const retained = heapUsed() - baseline;
  if (retained > MAX_RETAINED_HEAP_GROWTH) {
    const leak = new FuzzFailure('memory', new Uint8Array(0), `${target.title} kept ${mib(retained)} after ${details.numRuns} inputs and a collection`);
    return { ...report, failure: leak };
  }
  return report;
}

/** `make`, run once and shared: targets that only read a fixture's bytes need not each pay for its keys. */
export function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make());
}

/** Where regression seeds live, committed: one folder per target. */
export const SEEDS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'seeds');

/** Saves `input` as a regression seed of `target`, named by its hash; returns the path. */
export function saveSeed(target: string, input: Uint8Array): string {
  const folder = join(SEEDS_DIR, target);
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`);
  writeFileSync(path, input);
  return path;
}

/** Every saved regression seed of `target`, by file name. */
export function savedSeeds(target: string): [string, Uint8Array][] {
  const folder = join(SEEDS_DIR, target);
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .filter((file) => file.endsWith('.bin'))
    .sort()
    .map((file) => [file, new Uint8Array(readFileSync(join(folder, file)))]);
}

/** A failure as a person reads it: target, kind, message, the input in hex and where it was saved. */
export function formatFailure(report: FuzzReport): string {
  const failure = report.failure;
  if (failure === undefined) return `${report.target}: no failure`;
  const lines = [`${report.target}: ${failure.kind}: ${failure.message}`, `  input (${failure.input.length} bytes): ${Buffer.from(failure.input).toString('hex')}`];
  if (report.savedAs !== undefined) lines.push(`  saved as ${report.savedAs}`);
  if (failure.cause instanceof Error && failure.cause.stack !== undefined) lines.push(`  ${failure.cause.stack.split('\n').slice(0, 4).join('\n  ')}`);
  return lines.join('\n');
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
