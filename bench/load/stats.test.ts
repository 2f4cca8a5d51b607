import { describe, expect, it } from 'vitest';

import { percentile } from '../server/driver.js';
import { bytesPerConnection, inFlightPerLane, parseVmRss, perSecond, shares } from './stats.js';

describe('load bench arithmetic', () => {
  it('takes nearest-rank percentiles of sorted values', () => {
    const sorted = Float64Array.from({ length: 1_000 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(500);
    expect(percentile(sorted, 99)).toBe(990);
    expect(percentile(sorted, 99.9)).toBe(999);
    expect(percentile(sorted, 100)).toBe(1_000);
    expect(percentile(Float64Array.of(7), 99.9)).toBe(7);
    expect(percentile(new Float64Array(0), 50)).toBeNaN();
  });

  it('keeps about a thousand sends in flight, at least one per lane', () => {
    expect(inFlightPerLane(50)).toBe(20);
    expect(inFlightPerLane(500)).toBe(2);
    expect(inFlightPerLane(5_000)).toBe(1);
    expect(() => inFlightPerLane(0)).toThrow(RangeError);
  });

  it('reads VmRSS from /proc/<pid>/status', () => {
    expect(parseVmRss('Name:\tnode\nVmPeak:\t 999 kB\nVmRSS:\t   51200 kB\nThreads:\t7\n')).toBe(51_200 * 1024);
    expect(() => parseVmRss('Name:\tnode\n')).toThrow();
  });

  it('divides memory growth by connections, and counts per second', () => {
    expect(bytesPerConnection(100_000_000, 150_000_000, 10_000)).toBe(5_000);
    expect(() => bytesPerConnection(0, 1, 0)).toThrow(RangeError);
    expect(perSecond(10_000, 500)).toBe(20_000);
  });

  it('splits a total into near-equal shares', () => {
    expect(shares(10, 3)).toEqual([4, 3, 3]);
    expect(shares(20_000, 50).reduce((a, b) => a + b)).toBe(20_000);
  });
});
