// The files `report` reads back, damaged: each gives an error naming the file, the problem and
// the fix (never a bare JavaScript message), or, for a half-written last line of metrics.jsonl,
// a note.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@normprune/runtime';
import { StartOver } from '../src/pipeline';
import { cli, tinyRunArgs, writeVariant } from './helpers';

const finished = join(__dirname, '..', 'results', 'lenet-500-300-output');
let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-damaged-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of a finished run (results/ is never written), with `damage` applied to it. */
function damagedRun(damage: (dir: string) => void): string {
  const dir = join(tmp, `run-${n++}`);
  cpSync(finished, dir, { recursive: true });
  damage(dir);
  return dir;
}

const editResults = (edit: (r: any) => unknown) => (dir: string) => {
  const f = join(dir, 'results.json');
  writeFileSync(f, JSON.stringify(edit(JSON.parse(readFileSync(f, 'utf8')))));
};

describe('report on a damaged results.json', () => {
  it.each<[string, (r: any) => unknown, string]>([
    ['null', () => null, 'it is null, not a JSON object'],
    ['an array', () => [], 'it is an array, not a JSON object'],
    ['of another schema (a wrapper object)', (r) => ({ version: 2, run: r }), '"experiment" is missing'],
    ['without budget', (r) => ({ ...r, budget: undefined }), '"budget" is missing'],
    ['with a string baseline', (r) => ({ ...r, baseline: 'x' }), '"baseline" is a string, not an object'],
    [
      'with a string compressionPct',
      (r) => ({ ...r, compressionPct: '87' }),
      '"compressionPct" is a string, not a number',
    ],
    ['with groups null', (r) => ({ ...r, groups: null }), '"groups" is null, not an array'],
    [
      'with a layer that is a number',
      (r) => ({ ...r, compressed: { ...r.compressed, layers: [1] } }),
      '"compressed.layers[0]" is a number, not an object',
    ],
    ['with a string seed', (r) => ({ ...r, seed: '1' }), '"seed" is a string, not a number'],
  ])('%s is named, with what to do', async (_, edit, why) => {
    const dir = damagedRun(editResults(edit));
    const r = await cli(['report', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `normprune: error: report: ${join(dir, 'results.json')} is not the results.json of a finished run of this ` +
        `normprune: ${why}; run the experiment again to rewrite it\n`,
    );
  });

  it('a truncated results.json is named (no defect: a test that none had)', async () => {
    const dir = damagedRun((d) => {
      const f = join(d, 'results.json');
      writeFileSync(f, readFileSync(f, 'utf8').slice(0, 100));
    });
    const r = await cli(['report', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      `${join(dir, 'results.json')} is not valid JSON (Unterminated string in JSON at position 100); the run did not finish writing it; run it again`,
    );
  });
});

describe('report on a damaged metrics.jsonl', () => {
  it('without metrics.jsonl says the curves are left out, instead of drawing empty ones', async () => {
    const dir = damagedRun((d) => rmSync(join(d, 'metrics.jsonl')));
    const curves = readFileSync(join(dir, 'plots', 'curves.svg'), 'utf8');
    const r = await cli(['report', dir]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      `note: ${join(dir, 'metrics.jsonl')} is missing: the report leaves the training curves out ` +
        '(the plots of an earlier report stay in plots/, unlinked)\n',
    );
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(md).toContain("**Note:** this run's `metrics.jsonl` is missing, so the training curves");
    expect(md).not.toMatch(/plots\/(curves|loss|compression)\.svg/);
    expect(md).toContain('(plots/units.svg)');
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('metrics.jsonl</code> is missing');
    // The earlier report's curves, perhaps the only record of the training left, are not overwritten.
    expect(readFileSync(join(dir, 'plots', 'curves.svg'), 'utf8')).toBe(curves);
  });

  it('leaves out a half-written last line (a run killed while writing it), with a note', async () => {
    const dir = damagedRun((d) => {
      const f = join(d, 'metrics.jsonl');
      writeFileSync(f, readFileSync(f, 'utf8') + '{"phase": "finetune", "ep');
    });
    const report = readFileSync(join(finished, 'report.md'), 'utf8');
    const r = await cli(['report', dir]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      `note: ${join(dir, 'metrics.jsonl')} ends in a half-written line (the run was stopped while writing it); ` +
        'the report leaves it out\n',
    );
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toBe(report);
  });

  it.each([
    ['a line that is not JSON', (lines: string[]) => ((lines[1] = 'xx'), lines), 'line 2 is not valid JSON'],
    [
      'a complete last line that is not JSON',
      (lines: string[]) => [...lines.slice(0, -1), '{"a', ''],
      'line \\d+ is not valid JSON',
    ],
    [
      'a line that is null',
      (lines: string[]) => ((lines[0] = 'null'), lines),
      'line 1 is null, not a JSON object',
    ],
  ])('names %s', async (_, edit, why) => {
    const dir = damagedRun((d) => {
      const f = join(d, 'metrics.jsonl');
      writeFileSync(f, edit(readFileSync(f, 'utf8').split('\n')).join('\n'));
    });
    const r = await cli(['report', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        `^normprune: error: report: ${join(dir, 'metrics.jsonl')} ${why}.*; run the experiment again to rewrite it, ` +
          'or remove the line\\n$',
      ),
    );
  });
});

describe('report on a damaged sweep.json', () => {
  function sweepDir(text: string): string {
    const dir = join(tmp, `sweep-${n++}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'sweep.json'), text);
    return dir;
  }

  it.each([
    ['null', 'null', 'it is null, not a JSON object'],
    [
      'points that is not an array',
      '{"experiment": "x", "note": "", "points": 5}',
      '"points" is a number, not an array',
    ],
    [
      'a point that is null',
      '{"experiment": "x", "note": "", "points": [null]}',
      '"points[0]" is null, not an object',
    ],
    [
      'a point without dir',
      '{"experiment": "x", "note": "", "points": [{"label": "a"}]}',
      '"points[0].dir" is missing',
    ],
    ['no experiment', '{"note": "", "points": []}', '"experiment" is missing'],
  ])('%s is named', async (_, text, why) => {
    const dir = sweepDir(text);
    const r = await cli(['report', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `normprune: error: report: ${join(dir, 'sweep.json')} is not the sweep.json of a normprune sweep: ${why}; ` +
        'run the sweep again (with --resume it reuses its finished points) or remove the file\n',
    );
  });
});

test('a rerun over a finished run whose config.json is cut short names the damage, not files of yours', async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  const args = tinyRunArgs(join(tmp, 'cut'));
  expect((await cli(args)).code).toBe(0);
  const f = join(tmp, 'cut', 'config.json');
  writeFileSync(f, readFileSync(f, 'utf8').slice(0, 40));
  const r = await cli(args);
  expect(r.code).toBe(1);
  expect(r.err).toBe(
    `normprune: error: ${join(tmp, 'cut')} holds a finished run whose config.json is damaged (it does not read as a ` +
      "run's config.json): put back a whole copy of it, move the run away, or choose another --out\n",
  );
}, 60_000);

describe('train --resume over a damaged checkpoint', () => {
  let out: string;
  let ckpt: string;
  let saved: string;
  let args: string[];
  let state: Record<string, unknown>;

  beforeAll(async () => {
    await initBackend({ prefer: 'wasm', quiet: true });
    const cfg = writeVariant(tmp, 'tiny', () => undefined);
    out = join(tmp, 'interrupted');
    args = [
      'train',
      '--config',
      cfg,
      '--budget',
      'trainSubset=128,testSubset=64,validation=32,epochs=1',
      '--out',
      out,
    ];
    expect((await cli([...args, '--stop-after-steps', '2'])).code).toBe(130);
    ckpt = join(out, '.work', 'checkpoint');
    saved = join(tmp, 'checkpoint-copy');
    cpSync(ckpt, saved, { recursive: true });
    state = JSON.parse(readFileSync(join(ckpt, 'state.json'), 'utf8'));
  }, 60_000);

  const writeState = (edit: (s: Record<string, unknown>) => unknown) => () =>
    writeFileSync(join(ckpt, 'state.json'), JSON.stringify(edit(state)));

  it.each<[string, () => void, string]>([
    ['a state.json that is null', writeState(() => null), 'state.json: it is null, not a JSON object'],
    ['a state.json without configHash', writeState(() => ({})), 'state.json: "configHash" is missing'],
    [
      'an unknown phase',
      writeState((s) => ({ ...s, phase: 'x' })),
      'state.json: "phase" is "x", not one of baseline, proximal, finetune, done',
    ],
    [
      'a string epoch',
      writeState((s) => ({ ...s, epoch: 'x' })),
      'state.json: "epoch" is "x", not a non-negative integer',
    ],
    [
      'a negative step',
      writeState((s) => ({ ...s, step: -3 })),
      'state.json: "step" is -3, not a non-negative integer',
    ],
    ['acc null', writeState((s) => ({ ...s, acc: null })), 'state.json: "acc" is null, not an object'],
    [
      'a truncated optimizer.json',
      () => writeFileSync(join(ckpt, 'optimizer.json'), '[{"na'),
      // Node's own wording follows the parenthesis, and differs between versions.
      'optimizer.json is not valid JSON (',
    ],
    [
      'an empty optimizer.bin',
      () => writeFileSync(join(ckpt, 'optimizer.bin'), ''),
      'optimizer.bin has 0 bytes, but optimizer.json entry 0',
    ],
    [
      'a truncated optimizer-extras.json',
      () => writeFileSync(join(ckpt, 'optimizer-extras.json'), '{'),
      'optimizer-extras.json is not valid JSON (',
    ],
    ['a missing model.json', () => rmSync(join(ckpt, 'model', 'model.json')), 'Cannot load model: '],
  ])('%s says what to do', async (_, damage, why) => {
    rmSync(ckpt, { recursive: true, force: true });
    cpSync(saved, ckpt, { recursive: true });
    damage();
    const r = await cli([...args, '--resume']);
    expect(r.code).toBe(1);
    const error = r.err.split('\n').find((l) => l.startsWith('normprune: error: ')) ?? r.err;
    expect(error).toContain(`normprune: error: --resume: the checkpoint in ${ckpt} is damaged: ${why}`);
    expect(error).toMatch(
      /; start the run over: the same command with --force instead of --resume \(or remove .*checkpoint and run it without --resume\)$/,
    );
  });

  it('a damaged trained baseline (.work/baseline-model), which --resume reads back, says what to do', async () => {
    rmSync(ckpt, { recursive: true, force: true });
    cpSync(saved, ckpt, { recursive: true });
    const shard = join(out, '.work', 'baseline-model', 'model', 'group1-shard1of1.bin');
    const bytes = readFileSync(shard);
    writeFileSync(shard, bytes.subarray(0, bytes.length >> 1));
    try {
      const r = await cli([...args, '--resume']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        new RegExp(
          `normprune: error: --resume: the trained baseline in .*baseline-model cannot be read: .*${shard.replace(/[.]/g, '\\.')} ` +
            'has \\d+ bytes, but .*\\(truncated\\); the model folder is damaged or incomplete \\(cut short by a copy or a full ' +
            'disk\\?\\); start the run over: the same command with --force instead of --resume \\(or remove .*checkpoint and run it without --resume\\)\n',
        ),
      );
      // Found before the rest of the training, not after it.
      expect(r.err).not.toMatch(/epoch \d+\/\d+: loss/);
    } finally {
      writeFileSync(shard, bytes);
    }
  }, 60_000);

  it('a metrics.jsonl cut short or emptied is named before training, with what to do', async () => {
    expect(state.metricsCount).toBeGreaterThan(0);
    rmSync(ckpt, { recursive: true, force: true });
    cpSync(saved, ckpt, { recursive: true });
    const file = join(out, 'metrics.jsonl');
    const whole = readFileSync(file, 'utf8');
    try {
      for (const [content, why] of [
        [whole.slice(0, whole.indexOf('\n') - 5), 'line 1 is not valid JSON \\('],
        ['', `holds 0 lines`],
      ]) {
        writeFileSync(file, content);
        const r = await cli([...args, '--resume']);
        expect(r.code).toBe(1);
        expect(r.err).toMatch(
          new RegExp(
            `normprune: error: --resume: .*metrics\\.jsonl ${why}.*, and the checkpoint in .*checkpoint counts ${state.metricsCount} ` +
              'epoch lines in it; put back a whole copy of the file, or start the run over: the same command with --force instead of --resume ' +
              '\\(or remove .*checkpoint and run it without --resume\\)\n',
          ),
        );
        // Refused before any training.
        expect(r.err).not.toMatch(/epoch \d+\/\d+: loss/);
      }
    } finally {
      writeFileSync(file, whole);
    }
  }, 60_000);

  it('a null acc.lossSum (a NaN loss, as JSON writes it) is not damage: the run resumes', async () => {
    rmSync(ckpt, { recursive: true, force: true });
    cpSync(saved, ckpt, { recursive: true });
    writeState((s) => ({ ...s, acc: { ...(s.acc as object), lossSum: null } }))();
    const r = await cli([...args, '--resume']);
    expect(r.err).not.toContain('damaged');
    expect(r.code).toBe(0);
  }, 60_000);
});

describe('--baseline-from a damaged kept baseline', () => {
  let kept: string;
  let file: string;
  let saved: string;
  let args: string[];
  let baseline: Record<string, unknown>;

  beforeAll(async () => {
    await initBackend({ prefer: 'wasm', quiet: true });
    const cfg = writeVariant(tmp, 'kept', () => undefined);
    args = ['train', '--config', cfg, '--budget', 'trainSubset=128,testSubset=64,validation=32,epochs=1'];
    kept = join(tmp, 'kept');
    expect((await cli([...args, '--keep-baseline', '--out', kept])).code).toBe(0);
    file = join(kept, '.work', 'baseline', 'baseline.json');
    saved = readFileSync(file, 'utf8');
    baseline = JSON.parse(saved);
  }, 60_000);

  const writeKept = (edit: (b: Record<string, unknown>) => unknown) => () =>
    writeFileSync(file, JSON.stringify(edit(baseline)));

  it.each<[string, () => void, string]>([
    [
      'a baseline.json that is an array',
      writeKept(() => []),
      'baseline.json: it is an array, not a JSON object',
    ],
    ['no stats', writeKept(({ stats: _, ...b }) => b), 'baseline.json: "stats" is missing'],
    [
      'a string test error',
      writeKept((b) => ({ ...b, stats: { ...(b.stats as object), testError: 'x' } })),
      'baseline.json: "stats.testError" is a string, not a number',
    ],
    [
      'metrics that are no list',
      writeKept((b) => ({ ...b, metrics: 'x' })),
      'baseline.json: "metrics" is a string, not an array',
    ],
    [
      'a metrics line that is no JSON',
      writeKept((b) => ({ ...b, metrics: ['{"step'] })),
      'baseline.json: "metrics[0]" is "{\\"step", not a metrics.jsonl line (a JSON object)',
    ],
    [
      'a string of seconds',
      writeKept((b) => ({ ...b, seconds: '3' })),
      'baseline.json: "seconds" is a string, not a number',
    ],
    [
      'a truncated weight shard',
      () => {
        const dir = join(kept, '.work', 'baseline', 'model');
        const shard = join(dir, 'group1-shard1of1.bin');
        writeFileSync(shard, readFileSync(shard).subarray(0, 100));
      },
      'Cannot load model: ',
    ],
  ])('%s says what to do', async (_, damage, why) => {
    writeFileSync(file, saved);
    damage();
    const out = join(tmp, `from-kept-${n++}`);
    const r = await cli([...args, '--baseline-from', kept, '--out', out]);
    expect(r.code).toBe(1);
    const error = r.err.split('\n').find((l) => l.startsWith('normprune: error: ')) ?? r.err;
    expect(error).toContain(why);
    expect(error).toContain(kept);
    expect(error).toMatch(/train that (run|baseline) again with --keep-baseline, or drop --baseline-from/);
    expect(error).not.toMatch(/Cannot read properties|is not a function|Unexpected token/);
  });
});

test('the advice of StartOver: --force instead of --resume, --force alone for a run not resumed, a cheaper fix first', () => {
  expect(new StartOver('p', '/c').message).toBe(
    'p; start the run over: the same command with --force instead of --resume (or remove /c and run it without --resume)',
  );
  expect(new StartOver('p', '/c', { resumed: false }).message).toBe(
    'p; start the run over: the same command with --force',
  );
  expect(new StartOver('p', '/c', { putBack: 'put back a whole copy of the file' }).message).toMatch(
    /^p; put back a whole copy of the file, or start the run over: /,
  );
});
