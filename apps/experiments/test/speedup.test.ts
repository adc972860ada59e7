// The report's speed-up cells: a compressed model exactly as fast as its baseline is not slower.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResults } from '../src/pipeline';
import { runReportBlocks, toMarkdown } from '../src/report';

test('a compressed model exactly as fast as its baseline is not reported as slower', () => {
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'lenet-500-300-output', 'results.json'), 'utf8'),
  ) as RunResults;
  const r = {
    ...committed,
    baseline: { ...committed.baseline, latencyMs: { batch1: 0.5, batch256: 4 } },
    compressed: { ...committed.compressed, latencyMs: { batch1: 0.5, batch256: 2 } },
  } as RunResults;
  const dir = mkdtempSync(join(tmpdir(), 'np-probe-'));
  try {
    const md = toMarkdown(runReportBlocks(dir, r, []));
    expect(md).toMatch(/latency, batch 1 .*x1\.00 faster/);
    expect(md).toMatch(/latency, batch 256 .*x2\.00 faster/);
    expect(md).not.toMatch(/\(slower\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
