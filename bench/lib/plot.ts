/**
 * A small SVG line chart for the benchmark report, with no dependencies: axes
 * with ticks and labels, linear or log scale on either axis, one coloured line
 * with point markers per series, a legend and a title. The background is a
 * white rectangle, so the chart reads the same in GitHub's light and dark
 * themes.
 */
import type { Plot } from './report.js';

export const PLOT_WIDTH = 720;
export const PLOT_HEIGHT = 420;
/** Room for the title and legend above, tick labels and axis labels around. */
export const PLOT_MARGIN = { top: 56, right: 24, bottom: 56, left: 76 } as const;

/** Okabe–Ito colours: distinguishable with the common colour-vision deficiencies. */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'] as const;

/** One axis: maps data values to pixels and lists its ticks. */
export interface Axis {
  readonly domain: readonly [number, number];
  readonly ticks: readonly number[];
  readonly log: boolean;
  /** Pixel position of `value` between `range[0]` and `range[1]`. */
  position(value: number, range: readonly [number, number]): number;
}

/**
 * An axis over `values`. A log axis spans whole powers of ten around the data
 * and ticks at each; a linear axis spans "nice" steps (1, 2, 5 × 10ⁿ), from
 * zero when `fromZero` and every value is positive.
 *
 * @throws RangeError when a log axis is given a value ≤ 0, or there are no values.
 */
export function axis(values: readonly number[], log: boolean, fromZero = false): Axis {
  if (values.length === 0) throw new RangeError('axis: no values');
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (log) {
    if (min <= 0) throw new RangeError(`axis: a log axis needs values > 0, got ${min}`);
    let low = Math.floor(Math.log10(min));
    let high = Math.ceil(Math.log10(max));
    if (low === high) [low, high] = [low, high + 1];
    const ticks: number[] = [];
    for (let e = low; e <= high; e++) ticks.push(10 ** e);
    const [a, b] = [low, high];
    return {
      domain: [10 ** a, 10 ** b],
      ticks,
      log,
      position: (value, [r0, r1]) => r0 + ((Math.log10(value) - a) / (b - a)) * (r1 - r0),
    };
  }
  if (fromZero && min > 0) min = 0;
  if (min === max) [min, max] = min === 0 ? [0, 1] : [min - Math.abs(min) / 2, max + Math.abs(max) / 2];
  // Counts (rounds, members) get whole-number ticks.
  const whole = values.every(Number.isInteger);
  const step = whole ? Math.max(1, niceStep((max - min) / 5)) : niceStep((max - min) / 5);
  const low = Math.floor(min / step) * step;
  const high = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = low; t <= high + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return {
    domain: [low, high],
    ticks,
    log,
    position: (value, [r0, r1]) => r0 + ((value - low) / (high - low)) * (r1 - r0),
  };
}

/** The smallest of 1, 2, 5 × 10ⁿ at least `rough`. */
function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  for (const m of [1, 2, 5, 10]) if (m * power >= rough) return m * power;
  return 10 * power;
}

/** A tick label: 1.5k, 20M, 0.25. */
export function tickLabel(value: number): string {
  const abs = Math.abs(value);
  const trim = (n: number) => String(Number(n.toPrecision(3)));
  if (abs >= 1e9) return `${trim(value / 1e9)}G`;
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e3) return `${trim(value / 1e3)}k`;
  return trim(value);
}

const escape = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const px = (n: number): string => String(Math.round(n * 10) / 10);

/** Renders `plot` as a standalone SVG document. */
export function renderPlot(plot: Plot): string {
  const points = plot.series.flatMap((s) => s.points);
  const x = axis(
    points.map(([value]) => value),
    plot.x.log === true,
  );
  const y = axis(
    points.map(([, value]) => value),
    plot.y.log === true,
    true,
  );
  const { top, right, bottom, left } = PLOT_MARGIN;
  const xRange = [left, PLOT_WIDTH - right] as const;
  const yRange = [PLOT_HEIGHT - bottom, top] as const;
  const X = (value: number) => x.position(value, xRange);
  const Y = (value: number) => y.position(value, yRange);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}" viewBox="0 0 ${PLOT_WIDTH} ${PLOT_HEIGHT}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escape(plot.title)}</title>`,
    `<rect width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PLOT_WIDTH / 2}" y="20" text-anchor="middle" font-size="15" font-weight="600" fill="#1f2328">${escape(plot.title)}</text>`,
  ];

  // Grid lines and tick labels.
  for (const tick of x.ticks) {
    const at = px(X(tick));
    out.push(`<line x1="${at}" y1="${top}" x2="${at}" y2="${PLOT_HEIGHT - bottom}" stroke="#d0d7de" stroke-width="1"/>`);
    out.push(`<text x="${at}" y="${PLOT_HEIGHT - bottom + 16}" text-anchor="middle" fill="#424a53">${tickLabel(tick)}</text>`);
  }
  for (const tick of y.ticks) {
    const at = px(Y(tick));
    out.push(`<line x1="${left}" y1="${at}" x2="${PLOT_WIDTH - right}" y2="${at}" stroke="#d0d7de" stroke-width="1"/>`);
    out.push(`<text x="${left - 6}" y="${at}" text-anchor="end" dominant-baseline="middle" fill="#424a53">${tickLabel(tick)}</text>`);
  }
  // Axes and their labels.
  out.push(
    `<line x1="${left}" y1="${PLOT_HEIGHT - bottom}" x2="${PLOT_WIDTH - right}" y2="${PLOT_HEIGHT - bottom}" stroke="#1f2328" stroke-width="1.2"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${PLOT_HEIGHT - bottom}" stroke="#1f2328" stroke-width="1.2"/>`,
    `<text x="${(left + PLOT_WIDTH - right) / 2}" y="${PLOT_HEIGHT - 14}" text-anchor="middle" fill="#1f2328">${escape(plot.x.label)}${x.log ? ' (log)' : ''}</text>`,
    `<text transform="translate(18 ${(top + PLOT_HEIGHT - bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#1f2328">${escape(plot.y.label)}${y.log ? ' (log)' : ''}</text>`,
  );

  // One line with markers per series, and its legend entry.
  let legendX = left;
  plot.series.forEach((series, i) => {
    const colour = COLOURS[i % COLOURS.length] as string;
    const sorted = [...series.points].sort((a, b) => a[0] - b[0]);
    const path = sorted.map(([vx, vy]) => `${px(X(vx))},${px(Y(vy))}`).join(' ');
    out.push(`<polyline points="${path}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    for (const [vx, vy] of sorted) {
      out.push(`<circle cx="${px(X(vx))}" cy="${px(Y(vy))}" r="3.5" fill="${colour}"><title>${escape(series.name)}: ${vx}, ${vy}</title></circle>`);
    }
    out.push(
      `<line x1="${legendX}" y1="38" x2="${legendX + 18}" y2="38" stroke="${colour}" stroke-width="2"/>`,
      `<circle cx="${legendX + 9}" cy="38" r="3.5" fill="${colour}"/>`,
      `<text x="${legendX + 24}" y="38" dominant-baseline="middle" fill="#1f2328">${escape(series.name)}</text>`,
    );
    legendX += 24 + series.name.length * 7 + 18;
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
