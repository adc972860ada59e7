// An interrupted run (injected stop or a real Ctrl-C) continues from its
// checkpoint with --resume and ends exactly where an uninterrupted run ends.
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@normprune/runtime';
import { cli, spawnCli, writeVariant } from './helpers';
import { loadExperiment, main } from '../src/index';
import { resumePoint } from '../src/pipeline';

let tmp: string;
beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  tmp = mkdtempSync(join(tmpdir(), 'normprune-resume-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const BUDGET = 'trainSubset=512,testSubset=256,validation=64,epochs=2';
/**
 * {@link BUDGET} at a quarter of the model's width, for the runs whose checks do not depend on its
 * size: the same steps and checkpoints in a fraction of the time.
 */
const NARROW = `${BUDGET},widthMultiplier=0.25`;

/**
 * The folder of the uninterrupted run of `args`, made once in this file: tests that interrupt the
 * same run (same command, config and seed) in different ways compare with one reference.
 */
const wholeRuns = new Map<string, Promise<string>>();
function whole(args: string[]): Promise<string> {
  const key = JSON.stringify(args);
  let run = wholeRuns.get(key);
  if (!run) {
    const out = join(tmp, `whole-${wholeRuns.size + 1}`);
    run = cli([...args, '--out', out]).then((r) => {
      expect(r.code).toBe(0);
      return out;
    });
    wholeRuns.set(key, run);
  }
  return run;
}

/** Everything in a finished run that must not depend on interruptions. */
function fingerprint(dir: string) {
  const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
  const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      // Timing and the process-wide tensor count depend on the process, not the run.
      const { seconds: _s, samplesPerSec: _p, numTensors: _n, ...rest } = JSON.parse(l);
      return rest;
    });
  const weights = readdirSync(join(dir, 'model'))
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => readFileSync(join(dir, 'model', f)).toString('base64'));
  return {
    compressionPct: r.compressionPct,
    baseline: [r.baseline.testError, r.baseline.validationError, r.baseline.nonzeros],
    compressed: [
      r.compressed.testError,
      r.compressed.validationError,
      r.compressed.nonzeros,
      r.compressed.layers,
    ],
    prunedBeforeFinetune: r.prunedBeforeFinetune,
    groups: r.groups,
    metrics,
    weights,
  };
}

async function interruptedTwiceThenResumed(args: string[], out: string) {
  const a = await cli([...args, '--out', out, '--stop-after-steps', '5']);
  expect(a.code).toBe(130);
  expect(a.out).toMatch(/checkpoint written to .*continue with: .*--resume/s);
  expect(existsSync(join(out, '.work', 'checkpoint', 'state.json'))).toBe(true);
  // The signal is acted on at the next step, not at an epoch's end (whose checkpoints hold step
  // 0). Which epoch depends on how fast the signal arrives on a loaded machine: sent at the start
  // of the baseline's second epoch (48 steps), it lands there unless delivery takes that long.
  const state = JSON.parse(readFileSync(join(out, '.work', 'checkpoint', 'state.json'), 'utf8'));
  expect(state.step).toBeGreaterThanOrEqual(1);
  expect(['baseline', 'proximal', 'finetune']).toContain(state.phase);
  expect(existsSync(join(out, 'results.json'))).toBe(false);
  // A fresh start over an unfinished run is refused rather than mixing the two.
  expect((await cli([...args, '--out', out])).code).toBe(1);
  const b = await cli([...args, '--out', out, '--resume', '--stop-after-steps', '7']);
  expect(b.code).toBe(130);
  expect(b.out + b.err).toMatch(new RegExp(`resuming baseline at epoch 2/2, step ${state.step}\\b`));
  const c = await cli([...args, '--out', out, '--resume']);
  expect(c.code).toBe(0);
  expect(existsSync(join(out, '.work'))).toBe(false);
}

/** A seeded Adam run (the shipped config's optimiser) at {@link NARROW}. */
const adamArgs = ['reproduce', 'lenet-500-300', '--budget', NARROW, '--seed', '5', '--backend', 'wasm'];

test('Adam: resume after two interruptions equals an uninterrupted run (seeded, same backend)', async () => {
  const parts = join(tmp, 'parts-adam');
  await interruptedTwiceThenResumed(adamArgs, parts);
  expect(fingerprint(parts)).toEqual(fingerprint(await whole(adamArgs)));
});

test('a metrics line written after the last checkpoint (a kill between the two) is not kept twice', async () => {
  const args = adamArgs;
  const parts = join(tmp, 'parts-ahead');
  expect((await cli([...args, '--out', parts, '--stop-after-steps', '5'])).code).toBe(130);
  const state = JSON.parse(readFileSync(join(parts, '.work', 'checkpoint', 'state.json'), 'utf8'));
  const metrics = join(parts, 'metrics.jsonl');
  const lines = readFileSync(metrics, 'utf8').trim().split('\n');
  expect(lines).toHaveLength(state.metricsCount);
  // The line of an epoch whose checkpoint the kill prevented: the resumed run redoes that epoch.
  appendFileSync(metrics, lines[lines.length - 1] + '\n');
  expect((await cli([...args, '--out', parts, '--resume'])).code).toBe(0);
  expect(fingerprint(parts)).toEqual(fingerprint(await whole(args)));
});

/** A seeded run of SGD with momentum in every phase at {@link NARROW} (its config written on first use). */
const sgdArgs = () => {
  const file = writeVariant(tmp, 'sgd', (cfg) => {
    for (const phase of ['baseline', 'proximal', 'finetune'])
      Object.assign(cfg.training[phase], { optimizer: 'sgd', momentum: 0.9, learningRate: 0.05 });
    cfg.training.proximal.lambda = 0.05;
  });
  return ['train', '--config', file, '--budget', NARROW, '--seed', '2', '--backend', 'wasm'];
};

test('SGD with momentum: the momentum slots survive the checkpoint', async () => {
  const args = sgdArgs();
  const parts = join(tmp, 'parts-sgd');
  await interruptedTwiceThenResumed(args, parts);
  expect(fingerprint(parts)).toEqual(fingerprint(await whole(args)));
});

test('SGD with momentum: an interruption inside fine-tuning resumes with the fine-tune momentum slots', async () => {
  // Fine-tuning makes its own optimiser; a resume must reload its slots from the
  // checkpoint, or the resumed run restarts the momentum from zero and drifts.
  const args = sgdArgs();
  const wholeDir = await whole(args);
  // NARROW: 512 training images in batches of 128 = 4 steps per epoch, 2 epochs per
  // phase: baseline ends at global step 8, proximal at 16, fine-tuning at 24.
  const ends = (phase: string) =>
    readFileSync(join(wholeDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.phase === phase)
      .map((l) => l.step);
  expect(ends('proximal')).toEqual([12, 16]);
  expect(ends('finetune')).toEqual([20, 24]);

  const parts = join(tmp, 'parts-sgd-finetune');
  const state = () => JSON.parse(readFileSync(join(parts, '.work', 'checkpoint', 'state.json'), 'utf8'));
  // First stop after 11 steps: proximal epoch 1, 3 of its 4 steps done.
  const a = await cli([...args, '--out', parts, '--stop-after-steps', '11']);
  expect(a.code).toBe(130);
  expect([state().phase, state().epoch, state().step, state().globalStep]).toEqual(['proximal', 0, 3, 11]);
  // 8 more: global step 19, fine-tuning epoch 1, 3 of 4 steps done (momentum built up mid-epoch).
  const b = await cli([...args, '--out', parts, '--resume', '--stop-after-steps', '8']);
  expect(b.code).toBe(130);
  expect(b.out + b.err).toMatch(/resuming proximal at epoch 1\/2, step 3\b/);
  expect([state().phase, state().epoch, state().step, state().globalStep]).toEqual(['finetune', 0, 3, 19]);
  const c = await cli([...args, '--out', parts, '--resume']);
  expect(c.code).toBe(0);
  expect(c.out + c.err).toMatch(/resuming finetune at epoch 1\/2, step 3\b/);
  expect(existsSync(join(parts, '.work'))).toBe(false);
  expect(fingerprint(parts)).toEqual(fingerprint(wholeDir));
});

test('distillation: the teacher survives the checkpoint, and layer multipliers reach the optimiser', async () => {
  const distilled = (cfg: any) => {
    cfg.training.proximal.layerMultipliers = { dense2: 0 };
    cfg.training.proximal.lambda = 0.05;
    cfg.training.proximal.distill = { weight: 0.5, temperature: 3 };
    cfg.training.finetune.distill = { weight: 0.8, temperature: 2 };
  };
  // Per-neuron groups ('output'), so that dense2's multiplier of 0 spares its own 300 neurons.
  const file = writeVariant(tmp, 'distill', distilled, 'lenet-500-300-output');
  const args = ['train', '--config', file, '--budget', BUDGET, '--seed', '3', '--backend', 'wasm'];
  const wholeDir = await whole(args);
  // 4 steps per epoch, 2 baseline epochs: the second interruption lands in the
  // proximal phase, so the last resume must reload the teacher.
  const parts = join(tmp, 'parts-distill');
  await interruptedTwiceThenResumed(args, parts);
  expect(fingerprint(parts)).toEqual(fingerprint(wholeDir));
  const r = JSON.parse(readFileSync(join(wholeDir, 'results.json'), 'utf8'));
  const groups = Object.fromEntries(r.groups.map((g: { layer: string; live: number }) => [g.layer, g.live]));
  // dense2 carries no penalty: none of its 300 neurons is driven to zero.
  expect(groups.dense2).toBe(300);
  expect(groups.dense1).toBeLessThan(500);
  // The same config without distillation trains differently.
  const undistilled = writeVariant(
    tmp,
    'undistilled',
    (cfg) => {
      distilled(cfg);
      delete cfg.training.proximal.distill;
      delete cfg.training.finetune.distill;
    },
    'lenet-500-300-output',
  );
  const plain = join(tmp, 'plain-distill');
  expect((await cli([...args.map((a) => (a === file ? undistilled : a)), '--out', plain])).code).toBe(0);
  expect(fingerprint(plain).weights).not.toEqual(fingerprint(wholeDir).weights);
});

// Enough steps after the first epoch line that the signal always lands inside training: 120 are
// left then (the baseline's second epoch of 24, two epochs each of proximal training and fine-
// tuning), seconds of training even on an idle machine.
const signalArgs = [
  'reproduce',
  'lenet-500-300',
  '--budget',
  'trainSubset=3072,testSubset=256,validation=64,epochs=2',
  '--seed',
  '5',
  '--backend',
  'wasm',
];

/** Runs the CLI in a child process and sends it `signal` once the baseline's second epoch began. */
async function interrupted(
  out: string,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli([...signalArgs, '--out', out]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      if (/baseline epoch 1\//.test(stderr) && !child.killed) child.kill(signal);
    });
    child.on('exit', (c) => resolve(c));
  });
  return { code, stdout, stderr };
}

test('a real Ctrl-C (SIGINT) writes a checkpoint, exits 130, and --resume finishes the same run', async () => {
  const out = join(tmp, 'sigint');
  const { code, stdout, stderr } = await interrupted(out, 'SIGINT');
  expect(stderr).toMatch(/Ctrl-C: writing a checkpoint after this step \(Ctrl-C again quits without one\)/);
  expect(code).toBe(130);
  expect(stdout).toMatch(/continue with:/);
  expect(existsSync(join(out, '.work', 'checkpoint', 'state.json'))).toBe(true);
  // The signal is acted on at the next step, not at the end of the epoch it lands in (whose
  // checkpoints hold step 0); landing in the first epoch's end (sent as its line is printed,
  // before its checkpoint), it stops at that checkpoint. Which epoch depends on how fast the
  // signal arrives on a loaded machine: it lands in the baseline's second epoch (24 steps)
  // unless delivery takes that long.
  const state = JSON.parse(readFileSync(join(out, '.work', 'checkpoint', 'state.json'), 'utf8'));
  const atFirstEpochEnd = state.phase === 'baseline' && state.epoch === 1 && state.step === 0;
  expect([state.phase, state.epoch, state.step >= 1 || atFirstEpochEnd]).toEqual([
    state.phase,
    state.epoch,
    true,
  ]);
  expect(['baseline', 'proximal', 'finetune']).toContain(state.phase);
  const r = await cli([...signalArgs, '--out', out, '--resume']);
  expect(r.code).toBe(0);
  expect(fingerprint(out)).toEqual(fingerprint(await whole(signalArgs)));
});

test('SIGTERM (timeout, docker stop, a cancelled CI job) checkpoints like Ctrl-C, and --resume finishes', async () => {
  const out = join(tmp, 'sigterm');
  const { code, stdout, stderr } = await interrupted(out, 'SIGTERM');
  expect(stderr).toMatch(
    /SIGTERM: writing a checkpoint after this step \(a second SIGTERM quits without one\)/,
  );
  expect(code).toBe(130);
  expect(stdout).toMatch(/continue with: normprune reproduce lenet-500-300 .*--resume/);
  expect(existsSync(join(out, '.work', 'checkpoint', 'state.json'))).toBe(true);
  expect(existsSync(join(out, '.normprune.lock'))).toBe(false);
  expect((await cli([...signalArgs, '--out', out, '--resume'])).code).toBe(0);
  expect(fingerprint(out)).toEqual(fingerprint(await whole(signalArgs)));
});

/**
 * Runs the CLI in-process and emits `SIGINT` to it when a stderr line matches `when`: the line a
 * run logs at an epoch's end, after its last step and before that epoch's checkpoint.
 */
async function signalledAt(
  args: string[],
  when: RegExp,
): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = [];
  const errs: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  let sent = false;
  (process.stderr as any).write = (s: string | Uint8Array) => {
    errs.push(String(s));
    if (!sent && when.test(String(s))) {
      sent = true;
      process.emit('SIGINT', 'SIGINT');
    }
    return true;
  };
  try {
    const code = await main(args, (s) => lines.push(s));
    expect(sent).toBe(true);
    return { code, out: lines.join('\n'), err: errs.join('') };
  } finally {
    (process.stderr as any).write = write;
  }
}

test('Ctrl-C after the last training step (at the last epoch end) quits at its checkpoint, not after the report', async () => {
  const args = ['reproduce', 'lenet-500-300', '--budget', 'tiny', '--backend', 'wasm'];
  const out = join(tmp, 'after-last-step');
  const r = await signalledAt([...args, '--out', out], /finetune epoch 1\/1: /);
  expect(r.err).toMatch(/Ctrl-C: writing a checkpoint after this step/);
  // It was acknowledged, so it is obeyed: exit 130 with the command that goes on, no results.
  expect(r.code).toBe(130);
  expect(r.out).toMatch(/continue with: .*--resume/);
  expect(existsSync(join(out, 'results.json'))).toBe(false);
  const resumed = await cli([...args, '--out', out, '--resume']);
  expect(resumed.code).toBe(0);
  expect(resumed.err).toMatch(/resuming after the finetune phase's last epoch/);
  expect(fingerprint(out)).toEqual(fingerprint(await whole(args)));
  // In a sweep, the rest of the points do not run either.
  const sweepOut = join(tmp, 'after-last-step-sweep');
  const sweep = await signalledAt(
    [
      'sweep',
      'lenet-500-300',
      '--budget',
      'tiny',
      '--lambda',
      '0.002,0.02',
      '--backend',
      'wasm',
      '--out',
      sweepOut,
    ],
    /finetune epoch 1\/1: /,
  );
  expect(sweep.code).toBe(130);
  expect(sweep.err).not.toMatch(/sweep point lambda-0\.02/);
});

test('the resume message names the point a checkpoint holds, also after a phase or training ended', () => {
  const cfg = loadExperiment('lenet-500-300');
  const e = cfg.training.proximal.epochs;
  expect(resumePoint({ phase: 'proximal', epoch: 2, step: 17 }, cfg)).toBe(
    `resuming proximal at epoch 3/${e}, step 17`,
  );
  // A checkpoint after a phase's last epoch: no epoch e + 1 of that phase exists.
  expect(resumePoint({ phase: 'proximal', epoch: e, step: 0 }, cfg)).toBe(
    `resuming after the proximal phase's last epoch (${e}/${e})`,
  );
  expect(resumePoint({ phase: 'done', epoch: 0, step: 0 }, cfg)).toBe(
    'resuming after training: evaluation and export',
  );
});
