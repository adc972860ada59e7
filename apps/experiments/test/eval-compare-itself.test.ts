// `eval --model X --compare X`: the same model, by path, through a link, as model.json or as the
// run folder beside its model/, gets a note (not an error) that the paired test compares it with
// itself; two different models get none.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny } from './helpers';

let tmp: string;
let run: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-eval-itself-'));
  run = join(tmp, 'r1');
  expect((await reproduceTiny(run)).code).toBe(0);
  symlinkSync(run, join(tmp, 'link'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const itself = 'the paired test compares it with itself';

test.each([
  ['the same path', () => run, () => run],
  ['the run folder and its model/', () => run, () => join(run, 'model')],
  ['its model.json and a link to the run', () => join(run, 'model', 'model.json'), () => join(tmp, 'link')],
])('%s: a note, and the comparison still made', async (_what, model, compare) => {
  const r = await cli(['eval', '--model', model(), '--compare', compare(), '--backend', 'wasm']);
  expect(r.code).toBe(0);
  expect(r.err).toContain(
    `note: --model ${model()} and --compare ${compare()} are the same model (${join(run, 'model')}): ${itself}\n`,
  );
});

test('two different models: no note', async () => {
  const other = join(tmp, 'r2');
  expect((await reproduceTiny(other, '--seed', '2')).code).toBe(0);
  const r = await cli(['eval', '--model', run, '--compare', other, '--backend', 'wasm']);
  expect(r.code).toBe(0);
  expect(r.err).not.toContain(itself);
});
