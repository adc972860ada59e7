// What a folder holds decides whether it is a run's, not the names in it (review 25): a folder of
// the user's with a `.work/model` of its own is not a run's state; a run killed between its model
// export's two renames gets its model/ back.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-leftovers-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = ['--budget', 'tiny', '--backend', 'wasm'];
const reproduce = (out: string, ...extra: string[]) =>
  cli(['reproduce', 'lenet-500-300', ...tiny, '--out', out, ...extra]);

/** Every file under `dir` (relative path -> content), to compare a folder before and after. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true }) as string[])
    files[f] = statSync(join(dir, f)).isDirectory() ? '<dir>' : readFileSync(join(dir, f), 'latin1');
  return files;
}

test('a folder of yours whose .work has entries named as a run’s state is not a run: refused, never cleared', async () => {
  for (const entry of ['model', 'checkpoint', 'baseline', 'replaced', 'model.old']) {
    const dir = join(tmp, `u-${entry}`);
    mkdirSync(join(dir, '.work', entry), { recursive: true });
    writeFileSync(join(dir, 'report.md'), 'my notes');
    writeFileSync(join(dir, '.work', entry, 'notes.txt'), 'scratch');
    writeFileSync(join(dir, '.work', 'settings.json'), '{}');
    const before = snapshot(dir);
    for (const force of [[], ['--force']]) {
      const r = await reproduce(dir, ...force);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        /holds files that are not a normprune run, which the run would overwrite \(\.work, report\.md\); move them away or choose another --out/,
      );
      expect(snapshot(dir)).toEqual(before);
    }
  }
});

test('a run killed between its model export’s two renames gets its model/ back at the next start, and --resume finishes', async () => {
  const out = join(tmp, 'killed-export');
  expect((await reproduce(out, '--stop-after-steps', '1')).code).toBe(130);
  // What swapDir leaves when killed between its renames: model/ (a file of yours in it) renamed
  // to .work/model.old, the new export complete in .work/model.tmp, not yet renamed into place.
  mkdirSync(join(out, '.work', 'model.old'), { recursive: true });
  writeFileSync(join(out, '.work', 'model.old', 'notes.txt'), 'my notes');
  mkdirSync(join(out, '.work', 'model.tmp'));
  writeFileSync(join(out, '.work', 'model.tmp', 'model.json'), '{}');
  writeFileSync(join(out, '.work', 'model.tmp', 'notes.txt'), 'my notes');

  // Any next start of the run puts model/ back, even one refused before it trains.
  const refused = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--backend',
    'cpu',
    '--out',
    out,
    '--resume',
  ]);
  expect(refused.code).not.toBe(0);
  expect(refused.err).toMatch(/began on the wasm backend/);
  expect(readFileSync(join(out, 'model', 'notes.txt'), 'utf8')).toBe('my notes');
  expect(readdirSync(join(out, '.work'))).not.toContain('model.old');

  const resumed = await reproduce(out, '--resume');
  expect(resumed.code).toBe(0);
  expect(readdirSync(join(out, 'model')).sort()).toEqual(['group1-shard1of1.bin', 'model.json', 'notes.txt']);
  expect(readFileSync(join(out, 'model', 'notes.txt'), 'utf8')).toBe('my notes');
  expect(readdirSync(out)).not.toContain('.work');
});
