// A run's recorded config.json is the record of a run that already ran, not a config for a run to
// come (review 25, finding 5): one an earlier version accepted and this one's checks for written
// configs refuse (an empty sweep grid, which no run reads) stays evaluable and reportable.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-recorded-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('a run recorded with a config today’s checks refuse (sweep.lambda: []) can still be evaluated and reported', async () => {
  const run = join(tmp, 'run');
  expect(
    (await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--backend', 'wasm', '--out', run])).code,
  ).toBe(0);
  const old = join(tmp, 'old');
  cpSync(run, old, { recursive: true });
  const file = join(old, 'config.json');
  const recorded = JSON.parse(readFileSync(file, 'utf8'));
  recorded.config.sweep = { lambda: [] }; // accepted by f763336, unused by a run
  writeFileSync(file, JSON.stringify(recorded, null, 2));
  // The same grid in a config file someone writes is refused.
  const written = join(tmp, 'written.json');
  writeFileSync(written, JSON.stringify({ extends: 'lenet-500-300', sweep: { lambda: [] } }));
  const refused = await cli(['eval', '--model', old, '--config', written, '--budget', 'testSubset=64']);
  expect(refused.code).toBe(2);
  expect(refused.err).toMatch(/sweep\.lambda/);

  const explicit = await cli([
    'eval',
    '--model',
    old,
    '--experiment',
    'lenet-500-300',
    '--budget',
    'testSubset=64',
    '--backend',
    'wasm',
  ]);
  expect(explicit.err).not.toMatch(/invalid/);
  expect(explicit.code).toBe(0);
  const own = await cli(['eval', '--model', old, '--budget', 'testSubset=64', '--backend', 'wasm']);
  expect(own.err).not.toMatch(/invalid/);
  expect(own.code).toBe(0);
  expect((await cli(['report', old])).code).toBe(0);
});

test('eval --experiment on a run whose config.json does not parse evaluates, without the note on the run’s config', async () => {
  const run = join(tmp, 'run');
  const damaged = join(tmp, 'damaged');
  cpSync(run, damaged, { recursive: true });
  writeFileSync(join(damaged, 'config.json'), '{"config": ');
  const r = await cli([
    'eval',
    '--model',
    join(damaged, 'model'),
    '--experiment',
    'lenet-500-300',
    '--budget',
    'testSubset=64',
    '--backend',
    'wasm',
  ]);
  expect(r.code).toBe(0);
  expect(r.err).not.toMatch(/is the model of a run of/);
});

test('eval --compare a run whose config.json does not parse: evaluated with --experiment, named without it', async () => {
  const run = join(tmp, 'run');
  const damaged = join(tmp, 'damaged-compare');
  cpSync(run, damaged, { recursive: true });
  writeFileSync(join(damaged, 'config.json'), '{"config": ');
  const args = [
    'eval',
    '--model',
    run,
    '--compare',
    damaged,
    '--budget',
    'testSubset=64',
    '--backend',
    'wasm',
  ];
  const r = await cli([...args, '--experiment', 'lenet-500-300']);
  expect(r.code).toBe(0);
  expect(r.err).toMatch(
    /note: --compare: the run config of .*damaged-compare\/model cannot be read \(.*config\.json is not valid JSON.*\); it is evaluated on the inputs of lenet-500-300/,
  );
  // Without one, the error names --compare, and its advice (--experiment) works, as above.
  const bare = await cli(args);
  expect(bare.code).not.toBe(0);
  expect(bare.err).toMatch(
    /eval: --compare: .*damaged-compare\/config\.json is not valid JSON.*; give --config FILE or --experiment NAME instead/,
  );
});
