// The machine's load at latency time: recorded with each run, and the report warns when other
// processes competed for the CPU (medians inflated, speedups overstated).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuLoad, loadWarning, oversubscribed, type RunResults } from '../src/index';
import { runReportBlocks, toMarkdown } from '../src/report';

test('cpuLoad reads the load average and the cores of this machine', () => {
  const load = cpuLoad();
  expect(load.cores).toBeGreaterThanOrEqual(1);
  expect(Number.isInteger(load.cores)).toBe(true);
  expect(load.loadAverage).toBeGreaterThanOrEqual(0);
});

test.each([
  // load average, cores, oversubscribed
  [0, 2, false],
  [2.0, 2, false],
  [2.5, 2, false],
  [2.51, 2, true],
  [4.7, 2, true],
  [8.4, 8, false],
  [9.0, 8, true],
])('a load average of %f on %i cores is oversubscribed: %s', (loadAverage, cores, want) => {
  expect(oversubscribed({ loadAverage, cores })).toBe(want);
  // The run's and eval's note: only when oversubscribed, naming the load.
  const w = loadWarning({ loadAverage, cores });
  if (want) expect(w).toMatch(new RegExp(`load average was ${loadAverage.toFixed(1)} on ${cores} cores`));
  else expect(w).toBeUndefined();
});

describe('the report states the load under which the latencies were measured', () => {
  // A real run's results (the committed lenet-500-300 row), with the load set by each test.
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'lenet-500-300', 'results.json'), 'utf8'),
  ) as RunResults;
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'np-load-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const report = (r: RunResults) => toMarkdown(runReportBlocks(dir, r, []));

  test('on a busy machine it warns that the speedups may read too large', () => {
    const md = report({ ...committed, latencyLoad: { loadAverage: 4.7, cores: 2 } });
    expect(md).toMatch(/load average was 4\.7 on 2 cores when they were measured: other processes competed/);
    expect(md).toMatch(/speedups may read too large/);
  });

  test('on a quiet machine it gives the load without a warning', () => {
    const md = report({ ...committed, latencyLoad: { loadAverage: 1.1, cores: 2 } });
    expect(md).toMatch(/load average was 1\.1 on 2 cores when they were measured\./);
    expect(md).not.toMatch(/competed/);
  });

  test('results without a recorded load (older runs, or an OS without load averages) say nothing of it', () => {
    for (const latencyLoad of [undefined, { loadAverage: 0, cores: 4 }]) {
      const md = report({ ...committed, latencyLoad });
      expect(md).not.toMatch(/load average/);
    }
  });
});

describe('the report says when the time budget cut the latency timing short', () => {
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'vgg-16', 'results.json'), 'utf8'),
  ) as RunResults;
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'np-calls-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const report = (r: RunResults) => toMarkdown(runReportBlocks(dir, r, []));

  test('with latencyCalls it names the calls behind each median', () => {
    const md = report({ ...committed, latencyCalls: { batch1: 50, batch256: 4 } });
    expect(md).toMatch(
      /this model met that: batch 1 is the median of 50 calls and batch 256 of 4 \(normally 50 and 15\)/,
    );
  });

  test('without it (every committed run) it says nothing of a budget', () => {
    expect(committed.latencyCalls).toBeUndefined();
    expect(report(committed)).not.toMatch(/latency timing of a batch size stops/);
  });
});
