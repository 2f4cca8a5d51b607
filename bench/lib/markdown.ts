/**
 * docs/BENCHMARKS.md, written whole from one run of the suite: the machine,
 * every goal met or not, then each part's tables and plots. A run of some
 * parts (`--only`) keeps the other parts' sections from the previous run,
 * each marked with the date and commit it comes from.
 */
import type { Section, Table } from './report.js';

/** The machine and run the figures come from. */
export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
  readonly date: string;
  readonly commit: string;
  readonly quick: boolean;
}

/** Where a section kept from an earlier run comes from. */
export interface Earlier {
  readonly date: string;
  readonly commit: string;
  readonly quick: boolean;
}

/** A part the suite meant to run: its section (`earlier` when it was kept from a previous run), or why there is none. */
export type PartResult =
  | { readonly kind: 'ran'; readonly id: string; readonly seconds: number; readonly section: Section; readonly earlier?: Earlier }
  | { readonly kind: 'missing'; readonly id: string; readonly seconds?: number; readonly reason: string };

/** Escapes a table cell: pipes and line breaks would end it. */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** A cell that reads as a figure: a number, perhaps after ≤ or a sign, or a dash for none. */
const FIGURE = /^(?:[≤≥<>~+−-]\s*)?\d|^—$/;

/** A Markdown table: columns of figures right-aligned (never the first, which names the row), text left-aligned. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  const figures = header.map((_, i) => i > 0 && rows.length > 0 && rows.every((row) => FIGURE.test(row[i] ?? '')));
  const rule = `| ${figures.map((right) => (right ? '---:' : '---')).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

function tableSection(table: Table): string {
  const parts = [`### ${table.title}`, '', markdownTable(table.header, table.rows)];
  if (table.note !== undefined) parts.push('', table.note);
  return parts.join('\n');
}

/** Every section's goals in one table, each marked ✅ met, ❌ not met or ➖ not measured. */
export function goalsTable(results: readonly PartResult[]): string {
  const rows = results.flatMap((result) =>
    result.kind === 'ran'
      ? result.section.goals.map((g) => [result.section.title, g.goal, g.target, g.measured, g.met === null ? '➖ not measured' : g.met ? '✅ met' : '❌ not met'])
      : [],
  );
  if (rows.length === 0) return 'No part of this run reported a goal.';
  return markdownTable(['part', 'goal', 'target', 'measured', 'met'], rows);
}

const HOW_TO_READ =
  'Every figure below comes from one run of `npm run bench` on the machine described here, and every part measures ' +
  'Parley beside a peer (named under each part) in the same run, alternating between them so both meet the same ' +
  'machine. Absolute figures depend on the machine; read the ratios (Parley ÷ peer: below 1× means Parley takes less ' +
  'time, or for throughput the ratio says so in its column), and compare ratios only within one run. Where a ratio is ' +
  'followed by a range, the range is its lowest and highest value over the repeated rounds of that run. The goals ' +
  'table gathers the targets the project set and whether this run met them. A quick run (`--quick`) does less ' +
  'work per figure and is noisier.';

const fromEarlier = (earlier: Earlier) => `${earlier.date}, commit ${earlier.commit}${earlier.quick ? ', quick' : ''}`;

/** The whole of docs/BENCHMARKS.md. `plotPath` maps a plot id to its path relative to docs/. */
export function benchmarksMarkdown(machine: Machine, results: readonly PartResult[], plotPath = (id: string) => `benchmarks/${id}.svg`): string {
  const out: string[] = [
    '# Benchmarks',
    '',
    '<!-- Written by `npm run bench` (bench/run.ts) from one run; edits here are overwritten. -->',
    '',
    HOW_TO_READ,
    '',
    '## Machine',
    '',
    markdownTable(
      ['', 'this run'],
      [
        ['CPU', machine.cpu],
        ['cores', String(machine.cores)],
        ['memory', `${machine.memoryGiB.toFixed(1)} GiB`],
        ['Node', machine.node],
        ['OS', machine.os],
        ['date', machine.date],
        ['commit', machine.commit],
        ['run', machine.quick ? 'quick (`--quick`): reduced workloads' : 'full'],
      ],
    ),
    '',
    '## Parts',
    '',
    markdownTable(
      ['part', 'result', 'wall time'],
      results.map((r) => [
        r.kind === 'ran' ? r.section.title : r.id,
        r.kind === 'missing' ? r.reason : r.earlier === undefined ? 'ran' : `kept from an earlier run (${fromEarlier(r.earlier)})`,
        r.seconds === undefined ? '—' : `${r.seconds.toFixed(1)} s`,
      ]),
    ),
    '',
    '## Goals',
    '',
    goalsTable(results),
  ];
  for (const result of results) {
    if (result.kind !== 'ran') continue;
    const { section } = result;
    out.push('', `## ${section.title}`, '');
    if (result.earlier !== undefined) out.push(`*Not part of this run (\`--only\`): these figures come from an earlier run, ${fromEarlier(result.earlier)}.*`, '');
    out.push(`Peer: ${section.peer}.`);
    if (section.summary !== undefined) out.push('', section.summary);
    for (const table of section.tables) out.push('', tableSection(table));
    for (const plot of section.plots) out.push('', `![${plot.title}](${plotPath(plot.id)})`);
  }
  return `${out.join('\n')}\n`;
}
