// A run whose latency timing the time budget (LATENCY_BUDGET) cut short records the rounds behind
// each median in results.json, and its report says so (audit M213: no run ever met the budget, so
// a pipeline that dropped the record went unnoticed). Here batch 256's budget is spent at once
// (latencyMs given 0 ms), as a full-width VGG-16's 4 s calls spend it; batch 1 gets the default.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@normprune/runtime';
import * as measure from '../src/measure';
import { cli, tinyRunArgs } from './helpers';

jest.mock('../src/measure', () => {
  const actual = jest.requireActual('../src/measure');
  return { __esModule: true, ...actual, latencyMs: jest.fn(actual.latencyMs) };
});
const latencyMs = measure.latencyMs as jest.MockedFunction<typeof measure.latencyMs>;

let tmp: string;
beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  tmp = mkdtempSync(join(tmpdir(), 'normprune-latency-cut-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('a run whose batch-256 timing ran out of time budget records its calls, and the report names them', async () => {
  const actual: typeof measure = jest.requireActual('../src/measure');
  latencyMs.mockImplementation((models, shape, n, runs, budgetMs) =>
    actual.latencyMs(models, shape, n, runs, n === 256 ? 0 : budgetMs),
  );
  const out = join(tmp, 'run');
  const before = tf.memory().numTensors;
  const r = await cli(tinyRunArgs(out));
  expect(r.code).toBe(0);
  expect(tf.memory().numTensors).toBe(before);
  // Both models timed together, at each batch size, for LATENCY_RUNS rounds at most.
  expect(latencyMs.mock.calls.map(([models, , n, runs]) => [models.length, n, runs])).toEqual([
    [2, 1, measure.LATENCY_RUNS.batch1],
    [2, 256, measure.LATENCY_RUNS.batch256],
  ]);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  // Batch 1 ran all its rounds; batch 256 stopped at the fewest the budget allows.
  expect(results.latencyCalls).toEqual({
    batch1: measure.LATENCY_RUNS.batch1,
    batch256: measure.LATENCY_BUDGET.minRuns,
  });
  expect(results.compressed.latencyMs.batch256).toBeGreaterThan(0);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  expect(md).toContain(`${measure.latencyCallsNote(results.latencyCalls)}.`);
  expect(md).toMatch(/batch 1 is the median of 50 calls and batch 256 of 3 \(normally 50 and 15\)/);
});
