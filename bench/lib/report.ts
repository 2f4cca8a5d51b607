/**
 * What each benchmark part hands the suite (bench/run.ts): its tables, the
 * goals it reports against, and the curves to plot. The suite writes them
 * all, from one run, to bench/results/latest.json, docs/BENCHMARKS.md and
 * docs/benchmarks/*.svg. A part run alone prints the same tables.
 */
import { writeFile } from 'node:fs/promises';

import { printTable } from './measure.js';

/** One table, as printed and as written to the report. The first column names the row. */
export interface Table {
  readonly title: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** A sentence under the table: what the columns mean, what the peer did. */
  readonly note?: string;
}

/** A target the issue sets, the figure measured against it, and whether it is met (null: this run did not measure it). */
export interface Goal {
  readonly goal: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
}

/** One curve of a plot: y against x. */
export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [x: number, y: number])[];
}

/** A scaling curve, drawn as an SVG line chart. */
export interface Plot {
  /** File name without extension: docs/benchmarks/<id>.svg. */
  readonly id: string;
  readonly title: string;
  readonly x: { readonly label: string; readonly log?: boolean };
  readonly y: { readonly label: string; readonly log?: boolean };
  readonly series: readonly Series[];
}

/** What one part of the suite measured, against which peer. */
export interface Section {
  readonly id: string;
  readonly title: string;
  /** Who the figures are divided by: libsignal-client, a raw ws echo server, the other engine, the other provider. */
  readonly peer: string;
  /** How to read the section, in a sentence or two. */
  readonly summary?: string;
  readonly tables: readonly Table[];
  readonly goals: readonly Goal[];
  readonly plots: readonly Plot[];
  /** Machine-readable figures for the JSON file (numbers, keyed by what they measure). */
  readonly figures: Readonly<Record<string, unknown>>;
}

/** A goal's verdict in words. */
export const verdict = (met: boolean | null): string => (met === null ? 'not measured' : met ? 'met' : 'NOT met');

/** Options every part takes. */
export interface PartOptions {
  /** A reduced run: the whole suite in under two minutes. */
  readonly quick: boolean;
  /** The part's own command-line arguments (after the suite's). */
  readonly argv: readonly string[];
}

/** A benchmark part: runs, prints as it goes, and returns its section. */
export type Part = (options: PartOptions) => Promise<Section>;

/** The suite's own arguments, split from a part's. */
export interface PartArguments extends PartOptions {
  /** Where to write the section as JSON (`--section-out FILE`), when the suite runs the part. */
  readonly sectionOut?: string;
}

/**
 * Reads `--quick` and `--section-out FILE` (or `--section-out=FILE`) from a
 * part's command line; every other argument is the part's own.
 */
export function partArguments(args: readonly string[]): PartArguments {
  let quick = false;
  let sectionOut: string | undefined;
  const argv: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--quick') quick = true;
    else if (arg === '--section-out') {
      sectionOut = args[++i];
      if (sectionOut === undefined) throw new Error('--section-out needs a file name');
    } else if (arg.startsWith('--section-out=')) sectionOut = arg.slice('--section-out='.length);
    else argv.push(arg);
  }
  return { quick, argv, ...(sectionOut === undefined ? {} : { sectionOut }) };
}

/**
 * Runs a part from its own script: parses the suite's arguments from
 * process.argv, runs the part, prints its tables and goals, and writes its
 * section as JSON when given `--section-out FILE`. Every part's index.ts ends
 * with `await runPart(part)`.
 */
export async function runPart(part: Part): Promise<Section> {
  const { quick, argv, sectionOut } = partArguments(process.argv.slice(2));
  const section = await part({ quick, argv });
  printSection(section);
  if (sectionOut !== undefined) await writeFile(sectionOut, `${JSON.stringify(section, null, 2)}\n`);
  return section;
}

/** Prints a section's tables, notes and goals to stdout. */
export function printSection(section: Section): void {
  console.log(`\n${section.title} (peer: ${section.peer})`);
  for (const table of section.tables) {
    console.log(`\n${table.title}`);
    printTable(table.header, table.rows);
    if (table.note !== undefined) console.log(table.note);
  }
  if (section.goals.length > 0) {
    console.log('\ngoals');
    for (const goal of section.goals) {
      console.log(`  ${goal.goal}: ${goal.measured} (target ${goal.target}) — ${verdict(goal.met)}`);
    }
  }
}
