// A run's verdict on its target is one verdict: results.json's `target.met` (what tables and
// scripts read) says what report.md's Target line and the run's closing line say. The report
// judges the figures again on its own, so a pipeline that recorded the opposite went unnoticed
// (audit M214). One target every run meets, one none can.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@normprune/runtime';
import { tableRow } from '../src/index';
import { cli, writeVariant } from './helpers';

let tmp: string;
beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  tmp = mkdtempSync(join(tmpdir(), 'normprune-verdict-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test.each([
  // name, target, met: 0% removed with any change up to +100 pp, or an error 100 pp below the baseline's
  ['met', { minCompressionPct: 0, maxErrorDeltaPp: 100 }, true],
  ['missed', { minCompressionPct: 0, maxErrorDeltaPp: -100 }, false],
])(
  "a target %s: results.json's target.met is the verdict report.md and the closing line print",
  async (name, target, met) => {
    const config = writeVariant(tmp, name, (cfg) => {
      cfg.target = target;
      cfg.training.batchSize = 256;
    });
    const out = join(tmp, name);
    const before = tf.memory().numTensors;
    const r = await cli(['train', '--config', config, '--budget', 'tiny', '--out', out, '--backend', 'wasm']);
    expect(r.code).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.target).toEqual({ ...target, met });
    const verdict = readFileSync(join(out, 'report.md'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Target: '));
    expect(verdict).toHaveLength(1);
    expect(verdict[0]).toMatch(
      met
        ? /: met at a reduced budget only, not a reproduction \(>= 0% removed, error <= \+100\.00 pp\)\.$/
        : /: \*\*missed\*\* at a reduced budget only, not a reproduction: error [+-][\d.]+ pp > -100\.00 pp /,
    );
    expect(r.out).toMatch(
      met
        ? /; target met \(at a reduced budget: not a reproduction\)$/m
        : /; target MISSED \(at a reduced budget: not a reproduction\)$/m,
    );
    // The results-table row carries results.json's verdict beside its cell, which says the same.
    const row = tableRow(results);
    expect(row.target?.met).toBe(met);
    expect(row.targetText).toMatch(met ? /^met / : /^\*\*missed\*\* /);
  },
);
