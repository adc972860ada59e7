// What a new user types and gets wrong: misspelled flags, negative numbers,
// flags from other tools, --version, `help <command>`, broken config files.
// Each is a usage error (exit 2) whose message names the problem and the fix.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFileError } from '@normprune/runtime';
import { diskHint, heapFullHint } from '../src/cli';
import { cli, spawnCli, tinyRunArgs } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-usage-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (...args: string[]) => cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', ...args]);

test('a misspelled flag is named with the flag meant, in plain words', async () => {
  const r = await run('--sed', '2');
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/reproduce: unknown option --sed; did you mean --seed\?/);
  // Not node's parser text about positionals and '--'.
  expect(r.err).not.toMatch(/positional/);
  expect((await run('--resum')).err).toMatch(/did you mean --resume\?/);
  expect((await run('--data_dir', 'x')).err).toMatch(/did you mean --data-dir\?/);
  const p = await cli(['prune', '--model', 'm', '--out', 'o', '--treshold', '0.1']);
  expect(p.code).toBe(2);
  expect(p.err).toMatch(/prune: unknown option --treshold; did you mean --threshold\?/);
});

test('a flag another command takes says which commands take it', async () => {
  const r = await cli(['eval', '--model', 'm', '--seed', '2']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/eval: unknown option --seed \(reproduce, train and sweep take it\)/);
});

test('flags of other training tools point at the normprune way to say it', async () => {
  const e = await run('--epochs', '3');
  expect(e.code).toBe(2);
  expect(e.err).toMatch(/--budget epochs=N/);
  expect((await run('--batch-size', '32')).err).toMatch(/--budget batchSize=N/);
  const l = await run('--lambda', '0.003');
  expect(l.code).toBe(2);
  expect(l.err).toMatch(/normprune sweep <experiment> --lambda/);
  expect(l.err).toMatch(/"extends"/);
  expect((await run('--lr', '0.1')).err).toMatch(/learningRate/);
});

test('a negative number is read as the value of its flag, and refused for what it is', async () => {
  const s = await run('--seed', '-1');
  expect(s.code).toBe(2);
  expect(s.err).toMatch(/--seed: expected a non-negative integer, got "-1"/);
  expect(s.err).not.toMatch(/ambiguous/);
  // Past 32 bits a seed would repeat a smaller one's data order (the generators are 32-bit).
  const big = await run('--seed', String(2 ** 32));
  expect(big.code).toBe(2);
  expect(big.err).toMatch(/--seed: expected a whole number from 0 to 4294967295, got "4294967296"/);
  const t = await cli(['prune', '--model', 'm', '--out', join(tmp, 'p'), '--threshold', '-0.5']);
  expect(t.code).toBe(2);
  expect(t.err).toMatch(/--threshold: expected a finite number >= 0, got "-0.5"/);
  // Refused as a usage error before the model is looked at, like -0.5: not read as Infinity (and
  // then a failure, exit 1).
  // A hexadecimal, binary or octal literal is not read as its value (0x10 was a threshold of 16).
  for (const bad of ['1e999', 'Infinity', '0x10', '0b11', '0o7']) {
    const b = await cli(['prune', '--model', 'm', '--out', join(tmp, 'p'), '--threshold', bad]);
    expect(b.code).toBe(2);
    expect(b.err).toContain(`--threshold: expected a finite number >= 0, got "${bad}"`);
  }
  const l = await cli(['sweep', 'lenet-500-300', '--lambda', '-0.1']);
  expect(l.code).toBe(2);
  expect(l.err).toMatch(/--lambda: "-0.1" is not a finite number >= 0/);
  const hex = await cli(['sweep', 'lenet-500-300', '--lambda', '0.001,0x10']);
  expect(hex.code).toBe(2);
  expect(hex.err).toMatch(/--lambda: "0x10" is not a finite number >= 0/);
  // Decimal forms still read.
  for (const ok of ['.5', '5.', '+1e-3', '2E-3']) {
    const r = await cli(['sweep', 'lenet-500-300', '--lambda', ok, '--print-config']);
    expect(r.code).toBe(0);
  }
  // A flag with a missing value before another flag is still that error.
  const m = await run('--seed', '--force');
  expect(m.code).toBe(2);
  expect(m.err).toMatch(/--seed/);
});

test("--version prints the version; `help COMMAND` prints that command's help", async () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'));
  const v = await cli(['--version']);
  expect(v.code).toBe(0);
  expect(v.out).toBe(`normprune ${pkg.version}`);
  const h = await cli(['help', 'sweep']);
  expect(h.code).toBe(0);
  expect(h.out).toMatch(/^Usage: normprune sweep/);
  const bad = await cli(['help', 'sweeep']);
  expect(bad.code).toBe(2);
  expect(bad.err).toMatch(/unknown command "sweeep"; did you mean sweep\?/);
  expect((await cli(['trian', '--config', 'x.json'])).err).toMatch(/did you mean train\?/);
});

test("a budget with epochs above the config's says that they cap it", async () => {
  const r = await cli(['reproduce', 'lenet-500-300', '--budget', 'epochs=50', '--print-config']);
  expect(r.code).toBe(0);
  expect(r.err).toMatch(
    /note: --budget epochs cap the config's.*baseline 38 \(not 50\).*proximal 10 \(not 50\)/,
  );
  // Epochs within the config's need no note.
  expect(
    (await cli(['reproduce', 'lenet-500-300', '--budget', 'epochs=2', '--print-config'])).err,
  ).not.toMatch(/cap the config/);
});

test('a non-numeric or empty budget value names what was typed', async () => {
  const r = await cli(['reproduce', 'lenet-500-300', '--budget', 'epochs=abc', '--print-config']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/--budget: epochs: expected a number, got "abc"/);
  expect(r.err).not.toMatch(/NaN/);
  const e = await cli(['reproduce', 'lenet-500-300', '--budget', '', '--print-config']);
  expect(e.code).toBe(2);
  expect(e.err).toMatch(/--budget: empty/);
});

test('a budget setting that a later part would replace unseen is refused, naming the order that works', async () => {
  const budget = async (spec: string) =>
    await cli(['reproduce', 'lenet-500-300', '--budget', spec, '--print-config']);
  // tiny's trainSubset 256 replaced the 100 typed before it, and the run was named tiny+custom.
  const preset = await budget('trainSubset=100,tiny');
  expect(preset.code).toBe(2);
  expect(preset.err).toMatch(
    /preset tiny comes after trainSubset.*give the preset first: tiny,trainSubset=100/,
  );
  // epochs=2 replaced the fine-tuning's 1.
  const epochs = await budget('epochs.finetune=1,epochs=2');
  expect(epochs.code).toBe(2);
  expect(epochs.err).toMatch(
    /epochs comes after epochs\.finetune.*give epochs first: epochs=2,epochs\.finetune=1/,
  );
  const twice = await budget('epochs=1,epochs=2');
  expect(twice.code).toBe(2);
  expect(twice.err).toMatch(/--budget: epochs is given twice; give it once/);
  // What replaces nothing stays: a preset first, epochs before a phase's, a setting the preset leaves alone.
  for (const ok of ['tiny,trainSubset=100', 'epochs=2,epochs.finetune=1', 'widthMultiplier=0.5,tiny'])
    expect((await budget(ok)).code).toBe(0);
});

test('a JSON syntax error in a config names its line and column and shows the line', async () => {
  const f = join(tmp, 'syntax.json');
  writeFileSync(
    f,
    '{\n  "extends": "lenet-5-fc",\n  "name": "my-fc",\n  "training": {"proximal": {"lambda": 0.003,}}\n}\n',
  );
  const r = await cli(['train', '--config', f, '--budget', 'tiny']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/syntax\.json is not valid JSON at line 4, column 45: /);
  expect(r.err).toContain('  "training": {"proximal": {"lambda": 0.003,}}\n');
  expect(r.err).not.toMatch(/position/);
  const empty = join(tmp, 'empty.json');
  writeFileSync(empty, '\n');
  expect((await cli(['train', '--config', empty])).err).toMatch(/empty\.json is empty/);
  const dir = join(tmp, 'a-folder');
  mkdirSync(dir);
  const d = await cli(['train', '--config', dir]);
  expect(d.code).toBe(2);
  expect(d.err).toMatch(/config file .*a-folder is a directory; give a \.json file/);
});

test('a misspelled config field is named with the field meant', async () => {
  const f = join(tmp, 'typo.json');
  writeFileSync(
    f,
    JSON.stringify({ extends: 'lenet-5-fc', name: 'x', training: { proximal: { lamda: 0.003 } } }),
  );
  const r = await cli(['train', '--config', f]);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/training\.proximal: unknown field\(s\) "lamda" \(did you mean "lambda"\?\)/);
  const b = await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny,epcohs=2', '--print-config']);
  expect(b.code).toBe(2);
  expect(b.err).toMatch(/unknown field\(s\) "epcohs" \(did you mean "epochs"\?\)/);
});

test('eval and prune refuse a stray argument instead of ignoring it', async () => {
  const e = await cli(['eval', '--model', 'some-model', 'lenet-5']);
  expect(e.code).toBe(2);
  expect(e.err).toMatch(/eval: unexpected argument "lenet-5"; give the experiment as --experiment lenet-5/);
  const p = await cli(['prune', '--model', 'some-model', '--out', 'o', 'extra']);
  expect(p.code).toBe(2);
  expect(p.err).toMatch(/prune: unexpected argument "extra"/);
});

test('a flag given twice is refused, not reduced to its last value; a list flag says how to join them', async () => {
  // node's parser kept the last value: --keep a=3 --keep b=2 kept b only.
  const k = await cli(['prune', '--model', 'm', '--out', 'o', '--keep', 'dense1=3', '--keep', 'dense2=2']);
  expect(k.code).toBe(2);
  expect(k.err).toMatch(
    /prune: --keep is given twice \("dense1=3" and "dense2=2"\); give it once with the values joined: --keep dense1=3,dense2=2/,
  );
  const l = await cli(['sweep', 'lenet-5', '--lambda', '0.001', '--lambda=0.004']);
  expect(l.code).toBe(2);
  expect(l.err).toMatch(/--lambda is given twice .*: --lambda 0.001,0.004/);
  const s = await run('--seed', '1', '--seed', '2');
  expect(s.code).toBe(2);
  expect(s.err).toMatch(/reproduce: --seed is given twice \("1" and "2"\); give it once/);
  // A boolean flag twice means the same thing.
  expect((await run('--print-config', '--print-config')).code).toBe(0);
});

test('contradicting flags are refused: --resume with --force, eval --config with --experiment', async () => {
  const rf = await run('--out', join(tmp, 'rf'), '--resume', '--force');
  expect(rf.code).toBe(2);
  expect(rf.err).toMatch(
    /reproduce: --resume continues the run in --out and --force starts it over; give one of them/,
  );
  expect(existsSync(join(tmp, 'rf'))).toBe(false);
  const e = await cli(['eval', '--model', 'm', '--config', 'c.json', '--experiment', 'lenet-5']);
  expect(e.code).toBe(2);
  expect(e.err).toMatch(/eval: give --config FILE or --experiment NAME, not both/);
});

test('an empty sweep grid is refused: it would run no point and still write a sweep', async () => {
  for (const [flag, value] of [
    ['--lambda', ''],
    ['--lambda', ','],
    ['--granularity', ' '],
    ['--cost-weighting', ''],
  ]) {
    const out = join(tmp, 'empty-grid');
    const r = await cli(['sweep', 'lenet-5', flag, value, '--budget', 'tiny', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`${flag}: no value in ".*"; give one or more, as a,b,c`));
    expect(existsSync(out)).toBe(false);
  }
});

test('a list option with an empty entry is refused, naming the entry, not run without it', async () => {
  const out = join(tmp, 'empty-entry');
  for (const [flag, value, entry, fixed] of [
    ['--lambda', ',0.1', 1, '0.1'],
    ['--lambda', '0.001, ,0.1', 2, '0.001,0.1'],
    ['--granularity', 'output,', 2, 'output'],
    ['--cost-weighting', 'none,,macs', 2, 'none,macs'],
  ] as const) {
    const r = await cli(['sweep', 'lenet-500-300', flag, value, '--budget', 'tiny', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      `${flag}: entry ${entry} of "${value}" is empty; give a value between every two commas, ` +
        `or leave the extra comma out (${flag} ${fixed})`,
    );
    expect(existsSync(out)).toBe(false);
  }
  // prune's per-layer counts, and --budget's parts, go through the same parser.
  const keep = await cli(['prune', '--model', 'm', '--out', out, '--keep', 'dense1=30,']);
  expect(keep.code).toBe(2);
  expect(keep.err).toContain('--keep: entry 2 of "dense1=30," is empty');
  const budget = await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny,,epochs=1', '--print-config']);
  expect(budget.code).toBe(2);
  expect(budget.err).toContain(
    '--budget: entry 2 of "tiny,,epochs=1" is empty; give a value between every two commas, ' +
      'or leave the extra comma out (--budget tiny,epochs=1)',
  );
  // A JSON budget's commas are its own.
  const json = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    '{"epochs":1,"trainSubset":100}',
    '--print-config',
  ]);
  expect(json.code).toBe(0);
});

test('train given a config file or an experiment as an argument says how to give it', async () => {
  const j = await cli(['train', 'my config.json']);
  expect(j.code).toBe(2);
  expect(j.err).toMatch(
    /train: unexpected argument "my config.json"; give the config file as --config 'my config.json'/,
  );
  const x = await cli(['train', 'lenet-5']);
  expect(x.code).toBe(2);
  expect(x.err).toMatch(/a shipped experiment runs with `normprune reproduce lenet-5`/);
});

test('what a parser or validator would word its own way is said in normprune words', async () => {
  // A flag without its value: node's parser spoke of an "ambiguous" argument and '--seed=-XYZ'.
  // Its value is named as the command's --help names it.
  for (const [args, value] of [
    [['reproduce', 'lenet-5', '--seed', '--out', 'x'], '--seed N'],
    [['reproduce', 'lenet-5', '--seed'], '--seed N'],
    [['reproduce', 'lenet-5', '--backend'], '--backend NAME'],
    [['sweep', 'lenet-5', '--lambda'], '--lambda a,b,c'],
    [['report', 'runs/x', '--json'], '--json DIR'],
    [['prune', '--model', 'm', '--out', 'o', '--keep'], '--keep LAYER=N,...'],
    [['prune', '--model', 'm', '--out', 'o', '--backend'], '--backend NAME'],
    [['eval', '--model'], '--model DIR'],
  ] as const) {
    const r = await cli([...args]);
    expect(r.code).toBe(2);
    const flag = value.split(' ')[0];
    expect(r.err).toContain(`${args[0]}: ${flag} needs a value (${value})`);
  }
  for (const flag of ['--out', '--data-dir', '--seed']) {
    const r = await cli(['reproduce', 'lenet-5', flag, '']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`reproduce: ${flag} is empty; give a value`));
  }
  const v = await cli(['--verison']);
  expect(v.code).toBe(2);
  expect(v.err).toMatch(/unknown option --verison; did you mean --version\?/);
  const e = await cli(['reproduce', 'my.json']);
  expect(e.code).toBe(2);
  expect(e.err).toMatch(
    /`normprune list` describes them; a config file runs with `normprune train --config FILE`/,
  );
  // A budget or config field that does not exist lists the fields there.
  const b = await cli(['reproduce', 'lenet-5', '--budget', 'epochs.foo=1', '--print-config']);
  expect(b.code).toBe(2);
  expect(b.err).toMatch(/epochs: unknown field\(s\) "foo"; the fields here: baseline, proximal, finetune/);
  const file = join(tmp, 'missing-fields.json');
  writeFileSync(file, JSON.stringify({ name: 'x', dataset: { name: 'mnist', bar: 2 } }));
  const c = await cli(['train', '--config', file, '--print-config']);
  expect(c.code).toBe(2);
  expect(c.err).toMatch(
    /dataset: unknown field\(s\) "bar"; the fields here: name, validation, normalize, augment, seed/,
  );
  expect(c.err).toMatch(/model: required \(object expected\), missing/);
  expect(c.err).not.toMatch(/Invalid input/);
  // Those of a layer's type or a schedule's, not of the first type the union has (dense, constant).
  const typed = join(tmp, 'typed-fields.json');
  writeFileSync(
    typed,
    JSON.stringify({
      extends: 'lenet-5',
      name: 'typed',
      model: { layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, units: 4 }, { type: 'flatten' }] },
      training: { proximal: { schedule: { type: 'warmup', epochs: 1, steps: 2 } } },
    }),
  );
  const t = await cli(['train', '--config', typed, '--print-config']);
  expect(t.code).toBe(2);
  expect(t.err).toMatch(
    /model\.layers\.0: unknown field\(s\) "units"; the fields here: type, filters, kernelSize, strides, padding, activation, batchNorm, name\n/,
  );
  expect(t.err).toMatch(
    /training\.proximal\.schedule: unknown field\(s\) "steps"; the fields here: type, epochs\n/,
  );
  // A byte order mark, as Windows editors write, is not a JSON syntax error.
  const bom = join(tmp, 'bom.json');
  writeFileSync(bom, '\uFEFF' + JSON.stringify({ extends: 'lenet-5', name: 'bom' }));
  const read = await cli(['train', '--config', bom, '--print-config']);
  expect(read.code).toBe(0);
  expect(JSON.parse(read.out).name).toBe('bom');
});

test('--resume with nothing to resume says to run without it', async () => {
  const none = await run('--out', join(tmp, 'never-ran'), '--resume');
  expect(none.code).toBe(1);
  expect(none.err).toMatch(
    /--resume: no checkpoint in .*never-ran.*; nothing to resume: run the command without --resume/,
  );
  const finished = join(tmp, 'finished-run');
  mkdirSync(finished);
  writeFileSync(join(finished, 'results.json'), '{}');
  const done = await run('--out', finished, '--resume');
  expect(done.code).toBe(1);
  expect(done.err).toMatch(
    /the run in .*finished-run has finished \(see its report\.md\); nothing to resume/,
  );
  // A real finished run: the same command is told to repeat it without --resume; another seed is
  // told what differs, for a rerun without --resume would refuse the folder too.
  const real = join(tmp, 'finished-real');
  expect((await cli(tinyRunArgs(real))).code).toBe(0);
  const same = await cli(tinyRunArgs(real, '--resume'));
  expect(same.err).toMatch(
    /has finished \(see its report\.md\); nothing to resume: run the command without --resume to repeat it/,
  );
  const seed2 = await cli(tinyRunArgs(real, '--resume', '--seed', '2'));
  expect(seed2.code).toBe(1);
  expect(seed2.err).toMatch(
    /nothing to resume: it is a run of another config, budget or seed \(seed: 1 there, 2 here\): run this one without --resume in another --out, or with --force to replace it/,
  );
  expect(seed2.err).not.toMatch(/to repeat it/);
  // What it says works: without --resume the folder is refused, naming --force.
  expect((await cli(tinyRunArgs(real, '--seed', '2'))).err).toMatch(/--force/);
});

test('a reader that goes away (`2>&1 | head`) ends the output, not the run', async () => {
  const out = join(tmp, 'head');
  const child = spawnCli(tinyRunArgs(out));
  const code = await new Promise<number | null>((resolve) => {
    // Both pipes closed at the first line, as `head -1` does.
    child.stderr.once('data', () => {
      child.stderr.destroy();
      child.stdout.destroy();
    });
    child.on('exit', (c) => resolve(c));
  });
  expect(code).toBe(0);
  expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).experiment).toBe('lenet-500-300');
  expect(existsSync(join(out, '.normprune.lock'))).toBe(false);
});

test('a full wasm heap (runtime error code ERR_NORMPRUNE_WASM_HEAP_FULL) gets the CLI flags that help', () => {
  const full = Object.assign(new Error('normprune: the wasm backend cannot allocate ...'), {
    code: 'ERR_NORMPRUNE_WASM_HEAP_FULL',
  });
  for (const command of ['reproduce', 'train', 'sweep']) {
    const hint = heapFullHint(full, command);
    expect(hint).toMatch(/--release-saved-tensors-during-backprop/);
    expect(hint).toMatch(/--budget NAME,batchSize=N/);
    expect(hint).toMatch(/widthMultiplier=W/);
  }
  // Not for commands that do not train, nor for other errors.
  expect(heapFullHint(full, 'eval')).toBeUndefined();
  expect(heapFullHint(new Error('other'), 'reproduce')).toBeUndefined();
  expect(heapFullHint(undefined, 'reproduce')).toBeUndefined();
});

test('a full disk or a read-only file system under a model save gets what to do (the save names only its temp folder)', async () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: no luck, write`), { code });
  // As runtime's fileSystem throws it: a ModelFileError whose cause is Node's error.
  const save = (code: string) =>
    new ModelFileError(
      'save-failed',
      '/r/.work/checkpoint.tmp/model',
      `fileSystem: saving the model to /r/.work/checkpoint.tmp/model failed, the previous model.json (if any) is unchanged: ${code}: write`,
      errno(code),
    );
  for (const code of ['ENOSPC', 'EDQUOT'])
    expect(diskHint(save(code), 'reproduce')).toBe(
      'normprune: the disk is full: free some space and run the command again (with --resume if the run wrote a checkpoint)',
    );
  expect(diskHint(save('EROFS'), 'sweep')).toBe(
    'normprune: the file system is read-only: choose another --out, or make it writable and run the command again ' +
      '(with --resume if the run wrote a checkpoint)',
  );
  // Only the commands that take --out and --resume are told of them.
  expect(diskHint(save('ENOSPC'), 'prune')).toBe(
    'normprune: the disk is full: free some space and run the command again',
  );
  expect(diskHint(save('EROFS'), 'prune')).toBe(
    'normprune: the file system is read-only: choose another --out, or make it writable and run the command again',
  );
  expect(diskHint(save('EROFS'), 'report')).toBe(
    'normprune: the file system is read-only: make it writable and run the command again',
  );
  // Found in a cause's code alone, too.
  expect(diskHint(new Error('cannot export', { cause: errno('ENOSPC') }))).toMatch(/the disk is full/);
  // Not twice: a message that already says what to do, and none for other errors.
  expect(
    diskHint(new Error('cannot write x: ENOSPC; the disk is full: free some space and run again')),
  ).toBeUndefined();
  expect(diskHint(new Error('--out /m is not writable (EROFS); choose another --out'))).toBeUndefined();
  expect(diskHint(errno('EACCES'))).toBeUndefined();
  expect(diskHint(undefined)).toBeUndefined();
  // main prints it after the error of a run whose checkpoint's model save finds the disk full.
  const out = join(tmp, 'disk-full');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('node:fs') as typeof import('node:fs');
  const open = fs.promises.open;
  const spy = jest.spyOn(fs.promises, 'open').mockImplementation(async (file, ...rest) => {
    if (String(file).includes(join('.work', 'checkpoint.tmp'))) throw errno('ENOSPC');
    return open(file, ...rest);
  });
  try {
    const r = await cli(tinyRunArgs(out));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /normprune: error: fileSystem: saving the model to .*checkpoint\.tmp.* ENOSPC.*\nnormprune: the disk is full: free some space and run the command again \(with --resume if the run wrote a checkpoint\)\n/,
    );
  } finally {
    spy.mockRestore();
  }
});

test('an argument after the experiment is named, with what it was likely meant as, in one line', async () => {
  for (const [args, message] of [
    [
      ['reproduce', 'lenet-5', 'tiny'],
      'reproduce: unexpected argument "tiny" after the experiment lenet-5; a budget is given as --budget tiny',
    ],
    [
      ['sweep', 'lenet-5', 'small'],
      'sweep: unexpected argument "small" after the experiment lenet-5; a budget is given as --budget small',
    ],
    [
      ['reproduce', 'lenet-5', 'lenet-5-fc'],
      'reproduce: unexpected argument "lenet-5-fc" after the experiment lenet-5; one experiment a command: run lenet-5-fc with a command of its own',
    ],
    [
      ['reproduce', 'lenet-5', 'my.json'],
      'reproduce: unexpected argument "my.json" after the experiment lenet-5; a config file runs with `normprune train --config my.json`',
    ],
    [['sweep', 'lenet-5', 'x'], 'sweep: unexpected argument "x" after the experiment lenet-5'],
  ] as const) {
    const r = await cli([...args]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`normprune: ${message}\n`);
  }
});
