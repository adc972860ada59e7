// Cost weighting 'macs' (multiply-accumulates per sample), and 'flops', its former name: configs,
// flags and recorded runs and sweeps that say 'flops' are read as 'macs'.
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parseConfig } from '../src/index';
import { configHash, configHashes, configId, finishedRun } from '../src/pipeline';
import {
  COST_WEIGHTING_NAMES,
  currentCostWeighting,
  firstCostWeightingName,
  formerCostWeightingNote,
  isFormerCostWeighting,
} from '../src/cost-weighting';
import { clone, cli, experimentCopy, withStderr } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-macs-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** lenet-500-300 with the given proximal cost weighting and sweep grid of cost weightings. */
function variant(cost: string, grid?: string[]): any {
  const cfg = experimentCopy('lenet-500-300');
  cfg.training.proximal.costWeighting = cost;
  if (grid) cfg.sweep = { ...(cfg.sweep ?? {}), costWeighting: grid };
  return cfg;
}

describe('the config schema', () => {
  test("'macs' is a cost weighting, read without a note", async () => {
    const { value, err } = await withStderr(() => parseConfig(variant('macs', ['uniform', 'macs'])));
    expect(value.training.proximal.costWeighting).toBe('macs');
    expect(value.sweep?.costWeighting).toEqual(['uniform', 'macs']);
    expect(err).toBe('');
  });

  test("'flops' is read as 'macs', with a note naming each field that says it", async () => {
    const { value, err } = await withStderr(() =>
      parseConfig(variant('flops', ['flops', 'params']), 'old.json'),
    );
    expect(value.training.proximal.costWeighting).toBe('macs');
    expect(value.sweep?.costWeighting).toEqual(['macs', 'params']);
    expect(value).toEqual(parseConfig(variant('macs', ['macs', 'params'])));
    expect(err).toMatch(
      /note: old\.json: training\.proximal\.costWeighting "flops" is deprecated, read as "macs" .*; write "macs"\n/,
    );
    expect(err).toMatch(/note: old\.json: sweep\.costWeighting "flops" is deprecated, read as "macs"/);
    // A run's recorded config.json is read alike, without asking to rewrite the record.
    const recorded = await withStderr(() =>
      parseConfig(variant('flops', ['flops']), 'config.json', { recorded: true }),
    );
    expect(recorded.value.training.proximal.costWeighting).toBe('macs');
    expect(recorded.err).toBe('');
    // 'flops' and 'macs' in one grid are one weighting given twice.
    await expect(withStderr(() => parseConfig(variant('uniform', ['flops', 'macs'])))).rejects.toThrow(
      /sweep\.costWeighting: "macs" is given twice/,
    );
  });

  test("a wrong cost weighting is refused with the allowed ones, 'macs' among them", () => {
    expect(() => parseConfig(variant('MACs'))).toThrow(
      /training\.proximal\.costWeighting: got "MACs", allowed: "uniform", "params", "macs"$/m,
    );
    expect(() => parseConfig(variant('uniform', ['bytes']))).toThrow(
      /sweep\.costWeighting\.0: got "bytes", allowed: "uniform", "params", "macs"$/m,
    );
  });

  test("config.schema.json lets editors accept 'macs' and, deprecated, 'flops'", () => {
    const schema = JSON.parse(readFileSync(join(__dirname, '..', 'config.schema.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true }).compile(schema);
    expect(validate(variant('macs', ['macs']))).toBe(true);
    expect(validate(variant('flops', ['flops']))).toBe(true);
    expect(validate(variant('bytes'))).toBe(false);
  });
});

describe('the sweep flag', () => {
  test('--cost-weighting takes macs, reads flops as macs with a note, and lists macs when refusing', async () => {
    const bad = await cli(['sweep', 'lenet-500-300', '--cost-weighting', 'bytes', '--print-config']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--cost-weighting: got "bytes", allowed: uniform, params, macs/);
    const old = await cli(['sweep', 'lenet-500-300', '--cost-weighting', 'flops', '--print-config']);
    expect(old.code).toBe(0);
    expect(old.err).toMatch(/note: --cost-weighting flops is deprecated, read as macs .*; write macs/);
    const now = await cli(['sweep', 'lenet-500-300', '--cost-weighting', 'macs', '--print-config']);
    expect(now.code).toBe(0);
    expect(now.err).not.toMatch(/flops/);
    const twice = await cli(['sweep', 'lenet-500-300', '--cost-weighting', 'flops,macs', '--print-config']);
    expect(twice.code).toBe(2);
    expect(twice.err).toMatch(/--cost-weighting: "macs" is given twice/);
  });
});

describe('runs and sweeps recorded with cost weighting flops', () => {
  test('hash as they did: a config saying macs is the same run as one recorded with flops', () => {
    const macs = parseConfig(variant('macs', ['macs', 'uniform']));
    const recorded = clone(macs) as any;
    recorded.training.proximal.costWeighting = 'flops';
    recorded.sweep.costWeighting = ['flops', 'uniform'];
    const budget = { trainSubset: 256 };
    // What configHash gave before the rename, for the config then spelt 'flops' (a hash that
    // still took in the name and description: the earlier of configHashes).
    const before = createHash('sha256')
      .update(JSON.stringify({ cfg: recorded, budget, seed: 3 }))
      .digest('hex')
      .slice(0, 16);
    expect(configHashes(macs, budget, 3)[1]).toBe(before);
    expect(configHashes(recorded, budget, 3)[1]).toBe(before);
    expect(configHash(macs, budget, 3)).toBe(configHash(recorded, budget, 3));
    expect(configId(macs, budget)).toBe(configId(recorded, budget));
    // Other weightings hash as they always did.
    const params = parseConfig(variant('params'));
    expect(configHashes(params, budget, 3)[1]).toBe(
      createHash('sha256')
        .update(JSON.stringify({ cfg: params, budget, seed: 3 }))
        .digest('hex')
        .slice(0, 16),
    );
    expect(configHash(params, budget, 3)).not.toBe(configHash(macs, budget, 3));

    // A finished run whose config.json (written before the rename) says 'flops' is reused.
    const run = join(tmp, 'old-run');
    const committed = join(__dirname, '..', 'results', 'lenet-500-300');
    mkdirSync(run);
    cpSync(join(committed, 'results.json'), join(run, 'results.json'));
    writeFileSync(
      join(run, 'config.json'),
      JSON.stringify({
        experiment: 'lenet-500-300',
        seed: 3,
        budget: { name: 'custom', spec: budget },
        config: recorded,
      }),
    );
    expect(finishedRun(run, macs, budget, 3)?.experiment).toBe('lenet-500-300');
    expect(finishedRun(run, params, budget, 3)).toBeUndefined();
  });

  test('an old sweep.json recording flops reports its points as macs; the file is left as it was', async () => {
    // A committed sweep, its point given cost weighting 'flops' as a sweep before the rename wrote it.
    const src = join(__dirname, '..', 'results', 'lenet-5-fc-round-17', 'seed-1-lambda-0.0015');
    const copy = join(tmp, 'old-sweep');
    cpSync(src, copy, { recursive: true });
    const file = join(copy, 'sweep-lenet-5-fc', 'sweep.json');
    const sweep = JSON.parse(readFileSync(file, 'utf8'));
    sweep.note = sweep.note.replace(
      'Grid over lambda [0.0015]',
      'Grid over lambda [0.0015], cost weighting ["flops"]',
    );
    sweep.points = sweep.points.map((p: object) => ({ ...p, costWeighting: 'flops' }));
    const text = JSON.stringify(sweep, null, 2);
    writeFileSync(file, text);
    const r = await cli(['report', join(copy, 'sweep-lenet-5-fc')]);
    expect(r.code).toBe(0);
    const md = readFileSync(join(copy, 'sweep-lenet-5-fc', 'report.md'), 'utf8');
    expect(md).toMatch(/\| cost weighting +\|/);
    expect(md).toMatch(/\| lambda-0\.0015 +\| 0\.0015 +\| macs +\|/);
    expect(md).toMatch(/Grid over lambda \[0\.0015\], cost weighting \["macs"\]/);
    expect(md).not.toMatch(/flops/);
    expect(readFileSync(join(copy, 'sweep-lenet-5-fc', 'report.html'), 'utf8')).not.toMatch(/flops/);
    // The record itself is not rewritten.
    expect(readFileSync(file, 'utf8')).toBe(text);
  });
});

describe('the names of cost weightings, in one place', () => {
  test('current names read as themselves; the former name as the weighting it names', () => {
    expect(COST_WEIGHTING_NAMES).toEqual(['uniform', 'params', 'macs', 'flops']);
    expect(['uniform', 'params', 'macs', 'flops'].map(currentCostWeighting)).toEqual([
      'uniform',
      'params',
      'macs',
      'macs',
    ]);
    expect(['uniform', 'params', 'macs', 'flops'].map(isFormerCostWeighting)).toEqual([
      false,
      false,
      false,
      true,
    ]);
    // Not a former name: neither a prototype property nor a non-string.
    for (const v of ['constructor', 'toString', undefined, 3, null])
      expect(isFormerCostWeighting(v)).toBe(false);
  });

  test('hashes and point folders spell each weighting by its first name', () => {
    expect(['uniform', 'params', 'macs'].map(firstCostWeightingName)).toEqual(['uniform', 'params', 'flops']);
    // A first name is already a first name.
    expect(firstCostWeightingName('flops')).toBe('flops');
  });

  test("the flag's note and the config field's note say the same, quoted as each is written", () => {
    expect(formerCostWeightingNote('--cost-weighting', 'flops', false)).toBe(
      'note: --cost-weighting flops is deprecated, read as macs (its new name: the same weighting); write macs\n',
    );
    expect(formerCostWeightingNote('a.json: sweep.costWeighting', 'flops', true)).toBe(
      'note: a.json: sweep.costWeighting "flops" is deprecated, read as "macs" (its new name: the same weighting); write "macs"\n',
    );
  });
});
