// The report's speed-up cells: a compressed model as fast as its baseline is neither faster nor
// slower, and the words follow the ratio as printed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResults } from '../src/pipeline';
import { runReportBlocks, toMarkdown } from '../src/report';

/** The report of the committed lenet-500-300-output run with `change` applied to its results. */
function reportOf(change: (r: RunResults) => RunResults): string {
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'lenet-500-300-output', 'results.json'), 'utf8'),
  ) as RunResults;
  const dir = mkdtempSync(join(tmpdir(), 'np-probe-'));
  try {
    return toMarkdown(runReportBlocks(dir, change(committed), []));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a compressed model exactly as fast as its baseline is not reported as slower', () => {
  const md = reportOf((r) => ({
    ...r,
    baseline: { ...r.baseline, latencyMs: { batch1: 0.5, batch256: 4 } },
    compressed: { ...r.compressed, latencyMs: { batch1: 0.5, batch256: 2 } },
  }));
  expect(md).toMatch(/latency, batch 1 .*x1\.00 \(same\)/);
  expect(md).toMatch(/latency, batch 256 .*x2\.00 faster/);
  expect(md).not.toMatch(/\(slower\)/);
});

test('a ratio that prints as x1.00 is neither faster nor slower (audit 29: 40.3 ms -> 40.5 ms read "x1.00 (slower)")', () => {
  const md = reportOf((r) => ({
    ...r,
    baseline: { ...r.baseline, latencyMs: { batch1: 40.345, batch256: 40 } },
    compressed: { ...r.compressed, latencyMs: { batch1: 40.498, batch256: 40.5 } },
  }));
  expect(md).toMatch(/latency, batch 1 .*x1\.00 \(same\)/);
  // 40 / 40.5 = 0.988: x0.99, slower.
  expect(md).toMatch(/latency, batch 256 .*x0\.99 \(slower\)/);
  // 1.004 prints as x1.00 too.
  const up = reportOf((r) => ({
    ...r,
    baseline: { ...r.baseline, latencyMs: { batch1: 40.5, batch256: 40 } },
    compressed: { ...r.compressed, latencyMs: { batch1: 40.345, batch256: 20 } },
  }));
  expect(up).toMatch(/latency, batch 1 .*x1\.00 \(same\)/);
});
