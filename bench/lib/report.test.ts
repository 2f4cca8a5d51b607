import { describe, expect, it } from 'vitest';

import { benchmarksMarkdown, goalsTable, markdownTable, type Machine, type PartResult } from './markdown.js';
import { PLOT_MARGIN, PLOT_WIDTH, axis, renderPlot, tickLabel } from './plot.js';
import { partArguments, type Section } from './report.js';

const section = (overrides: Partial<Section> = {}): Section => ({
  id: 'protocol',
  title: 'Protocol',
  peer: 'libsignal-client',
  tables: [{ title: 'µs per message', header: ['figure', 'Parley', 'ratio'], rows: [['burst | encrypt', '3.0 µs', '0.60×']], note: 'Medians.' }],
  goals: [
    { goal: 'burst encrypt', target: '≤ 0.70×', measured: '0.60×', met: true },
    { goal: 'ping-pong', target: '≤ 0.70×', measured: '0.90×', met: false },
  ],
  plots: [{ id: 'scaling', title: 'Scaling', x: { label: 'members', log: true }, y: { label: 'ms' }, series: [{ name: 'a', points: [[10, 1]] }] }],
  figures: {},
  ...overrides,
});

const machine: Machine = {
  cpu: 'Test CPU',
  cores: 2,
  memoryGiB: 4,
  node: 'v20.0.0',
  os: 'Linux',
  date: '2026-11-27T00:00:00.000Z',
  commit: 'abc',
  quick: true,
};

/** Every marker's centre, in document order. */
const circles = (svg: string) => [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="3.5" fill="[^"]+"><title>/g)].map((m) => [Number(m[1]), Number(m[2])]);

describe('plot', () => {
  it('places 10 and 1000 at the ends of a log axis, and 100 in the middle', () => {
    const svg = renderPlot({
      id: 'p',
      title: 'T',
      x: { label: 'x', log: true },
      y: { label: 'y' },
      series: [{ name: 's', points: [[1000, 3], [10, 1], [100, 2]] }],
    });
    const xs = circles(svg).map(([x]) => x);
    expect(xs).toEqual([PLOT_MARGIN.left, (PLOT_MARGIN.left + PLOT_WIDTH - PLOT_MARGIN.right) / 2, PLOT_WIDTH - PLOT_MARGIN.right]);
    expect(svg).toContain('<rect width="720" height="420" fill="#ffffff"/>');
    expect(svg).toContain('x (log)');
  });

  it('ticks a log axis at powers of ten and refuses values ≤ 0', () => {
    expect(axis([3, 4000], true).ticks).toEqual([1, 10, 100, 1000, 10000]);
    expect(() => axis([0, 10], true)).toThrow(RangeError);
  });

  it('starts a linear y axis at zero with nice steps, larger values higher up', () => {
    const y = axis([12, 87], false, true);
    expect(y.domain).toEqual([0, 100]);
    expect(y.ticks).toEqual([0, 20, 40, 60, 80, 100]);
    expect(y.position(100, [400, 0])).toBe(0);
  });

  it('draws one line and one legend entry per series, and escapes names', () => {
    const svg = renderPlot({
      id: 'p',
      title: 'A <b>',
      x: { label: 'x' },
      y: { label: 'y' },
      series: [
        { name: 'one & two', points: [[1, 1], [2, 2]] },
        { name: 'three', points: [[1, 2], [2, 1]] },
      ],
    });
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('one &amp; two');
    expect(svg).toContain('A &lt;b&gt;');
    expect(svg).not.toContain('<b>');
  });

  it('labels ticks compactly', () => {
    expect([tickLabel(1500), tickLabel(2_000_000), tickLabel(0.25), tickLabel(100)]).toEqual(['1.5k', '2M', '0.25', '100']);
  });
});

describe('markdown', () => {
  it('marks unmet goals ❌ and met ones ✅', () => {
    const table = goalsTable([{ kind: 'ran', id: 'protocol', seconds: 1, section: section() }]);
    const rows = table.split('\n').slice(2);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('burst encrypt');
    expect(rows[0]).toContain('✅ met');
    expect(rows[1]).toContain('ping-pong');
    expect(rows[1]).toContain('❌ not met');
  });

  it('right-aligns columns of figures, not text, and escapes pipes in cells', () => {
    const table = markdownTable(['a', 'b', 'c'], [['x | y', '1.5 ms', 'ran'], ['z', '≤ 0.70×', 'missing']]);
    expect(table.split('\n')).toEqual(['| a | b | c |', '| --- | ---: | --- |', '| x \\| y | 1.5 ms | ran |', '| z | ≤ 0.70× | missing |']);
  });

  it('writes the machine, every part, the tables and the plots, and says which parts are missing', () => {
    const results: PartResult[] = [
      { kind: 'ran', id: 'protocol', seconds: 12.5, section: section() },
      { kind: 'missing', id: 'server', reason: 'bench/server/index.ts does not handle --section-out yet' },
    ];
    const md = benchmarksMarkdown(machine, results);
    expect(md.startsWith('# Benchmarks\n')).toBe(true);
    expect(md).toContain('| CPU | Test CPU |');
    expect(md).toContain('quick');
    expect(md).toContain('| server | bench/server/index.ts does not handle --section-out yet | — |');
    expect(md).toContain('## Protocol');
    expect(md).toContain('| burst \\| encrypt | 3.0 µs | 0.60× |');
    expect(md).toContain('![Scaling](benchmarks/scaling.svg)');
    expect(md.indexOf('## Goals')).toBeLessThan(md.indexOf('## Protocol'));
  });

  it('marks a section kept from an earlier run with that run’s date and commit, in the parts table and under its heading', () => {
    const earlier = { date: '2026-01-02T03:04:05.000Z', commit: 'abc123', quick: false };
    const md = benchmarksMarkdown(machine, [{ kind: 'ran', id: 'protocol', seconds: 1, section: section(), earlier }]);
    expect(md).toContain('| Protocol | kept from an earlier run (2026-01-02T03:04:05.000Z, commit abc123) |');
    expect(md).toMatch(/## Protocol\n\n\*Not part of this run \(`--only`\): these figures come from an earlier run, 2026-01-02T03:04:05\.000Z, commit abc123\.\*/);
    expect(benchmarksMarkdown(machine, [{ kind: 'ran', id: 'protocol', seconds: 1, section: section() }])).not.toContain('earlier run');
  });
});

describe('partArguments', () => {
  it('takes the suite’s arguments and leaves the part’s own', () => {
    expect(partArguments(['--quick', '--section-out', '/tmp/x.json', '--rounds', '2'])).toEqual({
      quick: true,
      sectionOut: '/tmp/x.json',
      argv: ['--rounds', '2'],
    });
    expect(partArguments(['--section-out=/tmp/y.json'])).toEqual({ quick: false, sectionOut: '/tmp/y.json', argv: [] });
  });
});
