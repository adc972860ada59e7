// `sweep --resume` given the folder of a finished sweep of another experiment, seed or config whose
// points have the labels of its own (lambda-0.001): refused as that sweep, before anything is
// written, not by the first point's run after the new plan was written over the finished sweep
// (which then read as an interrupted one, and its own command was refused).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, tinyWasm } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-resume-other-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test("a finished sweep's folder is refused to a --resume of another experiment or seed, and left as it was", async () => {
  const out = join(tmp, 's');
  const own = ['sweep', 'lenet-500-300', '--lambda', '0.001', ...tinyWasm(out)];
  expect((await cli(own)).code).toBe(0);
  const before = readdirSync(out).sort();
  const sweepJson = readFileSync(join(out, 'sweep.json'), 'utf8');
  for (const other of [
    ['sweep', 'lenet-5', '--lambda', '0.001', ...tinyWasm(out), '--resume'],
    // A grid holding its points extends a sweep, but only one of the same config, budget and seed.
    ['sweep', 'lenet-500-300', '--lambda', '0.001,0.002', ...tinyWasm(out), '--seed', '2', '--resume'],
  ]) {
    const r = await cli(other);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `${out} holds a sweep whose point lambda-0.001 is a run of another config, budget or seed (`,
    );
    expect(r.err).toContain(
      '--resume reuses only points of this one: choose another --out, or pass --force to replace its points',
    );
    expect(readdirSync(out).sort()).toEqual(before);
    expect(readFileSync(join(out, 'sweep.json'), 'utf8')).toBe(sweepJson);
  }
  // What differs is readable: a model's layers by their count, not hundreds of characters of JSON,
  // and arrays of one length entry by entry.
  const layers = await cli(['sweep', 'lenet-5', '--lambda', '0.001', ...tinyWasm(out), '--resume']);
  expect(layers.err).toContain('config.model.layers: 4 entries there, 7 entries here');
  expect(layers.err).not.toContain('"type":"conv2d"');
  const wide = await cli([
    'sweep',
    'lenet-500-300',
    '--lambda',
    '0.001',
    '--budget',
    'tiny,widthMultiplier=0.5',
    '--backend',
    'wasm',
    '--out',
    out,
    '--resume',
  ]);
  expect(wide.code).toBe(1);
  expect(wide.err).toContain('config.model.layers[1].units: 500 there, 250 here');
  // Its own command still knows it: the finished point is reused.
  const again = await cli([...own, '--resume']);
  expect(again.code).toBe(0);
  expect(again.err).toContain('sweep point lambda-0.001: finished before, reused');
});
