// A run resumed at the very end of an epoch (stopped after its last step) runs none of that
// epoch's steps: its line says so, and metrics.jsonl records no speed for it, rather than
// "0 samples/s" (a speed this process never measured).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reproduceTiny } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-resume-epoch-end-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('the resumed epoch records no samples/s, the next ones do', async () => {
  const out = join(tmp, 'run');
  // The tiny budget's baseline epoch: 256 images at lenet-500-300's batch of 128, 2 steps.
  expect((await reproduceTiny(out, '--stop-after-steps', '2')).code).toBe(130);
  const resumed = await reproduceTiny(out, '--resume');
  expect(resumed.code).toBe(0);
  expect(resumed.err).toContain('resuming baseline at epoch 1/1, step 2');
  expect(resumed.err).not.toMatch(/ 0 samples\/s/);
  expect(resumed.err).toMatch(
    /baseline epoch 1\/1: .*, no step run by this process \(resumed at the epoch's end\)/,
  );
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(lines.map((l) => l.phase)).toEqual(['baseline', 'proximal', 'finetune']);
  expect(lines[0]).not.toHaveProperty('samplesPerSec');
  for (const l of lines.slice(1)) expect(l.samplesPerSec).toBeGreaterThan(0);
});
