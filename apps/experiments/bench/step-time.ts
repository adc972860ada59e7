// CPU time of one training step of an experiment's model, per phase, as the CLI trains it (the
// pipeline's own trainingStep, optimisers and decomposition over seeded, augmented batches of the
// config's size; fine-tuning applies the kernel mask after each step), and of the validation
// pass, with the cost of the config's full budget extrapolated from them.
//
//   cd apps/experiments && node --require ../../scripts/ts-register.cjs bench/step-time.ts [experiment] [--steps N] [--width W] [--backend NAME] [--data-dir PATH]
//
// experiment: default vgg-16 (its `full` budget: full width, batch 128, 60 + 40 + 10 epochs on
// 45,000 images); --steps: timed steps per phase after an untimed first one (default 3); --width:
// a widthMultiplier (default 1); --data-dir: the data set's folder or archive, as the CLI's (default:
// the CLI's default sources). CPU time is this process's (process.cpuUsage: user + system),
// which load changes less than wall time; the table gives both and the load average. The
// extrapolation is arithmetic on these means (steps per epoch x epochs x CPU per step, plus the
// validation passes), not a measurement of a full run. Not a test: a full-width VGG-16 step takes
// about 10 s of CPU on this machine's wasm backend.
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { batches } from '@normprune/datasets';
import { kernelMask, prune } from '@normprune/surgery';
import { initBackend, type BackendName } from '@normprune/runtime';
import { applyBudget, loadExperiment, parseBudget } from '../src/config.js';
import { loadRunData, takeSplit } from '../src/data.js';
import { errorRate } from '../src/measure.js';
import { buildModel } from '../src/model.js';
import {
  decomposeFor,
  disposeOptimizer,
  makeOptimizer,
  makeProximalOptimizer,
  trainableVariables,
  trainingStep,
} from '../src/pipeline.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const experiment = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) ?? 'vgg-16';
const STEPS = Number(option('--steps') ?? 3);
const WIDTH = Number(option('--width') ?? 1);
const VALIDATION_IMAGES = 512;

interface Row {
  phase: string;
  steps: number;
  cpuSec: number;
  wallSec: number;
  load: number;
}

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

async function main(): Promise<void> {
  const backend = await initBackend({ prefer: (option('--backend') ?? 'wasm') as BackendName, quiet: true });
  const base = loadExperiment(experiment);
  const full = applyBudget(base, parseBudget('full', base).budget);
  const { budget } = parseBudget(`full,widthMultiplier=${WIDTH}`, base);
  const cfg = applyBudget(base, budget);
  const data = await loadRunData(cfg, budget, { offline: true, dataDir: option('--data-dir') });
  const batchSize = cfg.training.batchSize;
  const norm = { normalize: cfg.dataset.normalize, stats: data.stats };
  const rows: Row[] = [];

  const time = async (
    phase: string,
    m: tfl.LayersModel,
    opt: tf.Optimizer,
    afterStep?: () => void,
  ): Promise<void> => {
    const vars = trainableVariables(m);
    const cpu: number[] = [];
    const wall: number[] = [];
    const loads: number[] = [];
    let k = 0;
    for await (const b of batches(data.train, {
      batchSize,
      shuffle: true,
      seed: 1,
      augment: cfg.dataset.augment,
      ...norm,
      oneHot: true,
    })) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const l0 = loadavg()[0];
      const loss = trainingStep(m, opt, vars, b);
      await loss.data();
      afterStep?.();
      const c = process.cpuUsage(c0);
      if (k > 0) {
        cpu.push((c.user + c.system) / 1e6);
        wall.push((performance.now() - t0) / 1000);
        loads.push(l0);
      }
      tf.dispose([loss, b.xs, b.ys]);
      if (++k > STEPS) break;
    }
    rows.push({ phase, steps: cpu.length, cpuSec: mean(cpu), wallSec: mean(wall), load: mean(loads) });
  };

  const tensorsBefore = tf.memory().numTensors;
  const plain = buildModel(cfg.model.layers, data.shape as [number, number, number], 1);
  const validation = takeSplit(
    data.validation,
    Array.from({ length: Math.min(VALIDATION_IMAGES, data.validation.count) }, (_, i) => i),
  );
  // The validation pass (errorRate, batches of 500), timed once on the plain model.
  const v0 = process.cpuUsage();
  const vt = performance.now();
  await errorRate(plain, validation, norm);
  const vc = process.cpuUsage(v0);
  const evalRow: Row = {
    phase: `validation (${validation.count} images)`,
    steps: 1,
    cpuSec: (vc.user + vc.system) / 1e6,
    wallSec: (performance.now() - vt) / 1000,
    load: loadavg()[0],
  };

  let opt = makeOptimizer(cfg.training.baseline);
  await time('baseline', plain, opt);
  disposeOptimizer(opt);
  const m = decomposeFor(cfg, plain);
  plain.dispose();
  opt = makeProximalOptimizer(cfg, m);
  await time('proximal', m, opt);
  disposeOptimizer(opt);
  const pruned = prune(m).model;
  m.dispose();
  const mask = kernelMask(pruned);
  mask.apply();
  opt = makeOptimizer(cfg.training.finetune);
  await time('finetune', pruned, opt, () => mask.apply());
  disposeOptimizer(opt);
  mask.dispose();
  pruned.dispose();
  // The loops and models left nothing behind (what the data set holds is not a tensor).
  if (tf.memory().numTensors !== tensorsBefore)
    throw new Error(`the bench left ${tf.memory().numTensors - tensorsBefore} tensors behind`);

  console.log(
    `${experiment}, width ${WIDTH}, batch ${batchSize}, ${backend.backend} (${backend.threads} thread(s)); ` +
      `after an untimed first step, the mean of ${STEPS} steps per phase`,
  );
  const table = [...rows, evalRow].map((r) => ({
    phase: r.phase,
    'timed steps': r.steps,
    'CPU s/step': r.cpuSec.toFixed(2),
    'wall s/step': r.wallSec.toFixed(2),
    'load average': r.load.toFixed(2),
  }));
  console.table(table);

  // The full budget's cost, extrapolated (at this width).
  const trainImages = data.train.count;
  const stepsPerEpoch = Math.ceil(trainImages / full.training.batchSize);
  const valPerImage = evalRow.cpuSec / validation.count;
  let total = 0;
  const lines: string[] = [];
  for (const r of rows) {
    const epochs = full.training[r.phase as 'baseline' | 'proximal' | 'finetune'].epochs;
    const sec = epochs * stepsPerEpoch * r.cpuSec;
    total += sec;
    lines.push(
      `${r.phase} ${epochs} epochs x ${stepsPerEpoch} steps x ${r.cpuSec.toFixed(2)} s = ${Math.round(sec)} s`,
    );
  }
  const epochsAll = rows.reduce(
    (s, r) => s + full.training[r.phase as 'baseline' | 'proximal' | 'finetune'].epochs,
    0,
  );
  const valSec = epochsAll * full.dataset.validation * valPerImage;
  total += valSec;
  lines.push(
    `validation ${epochsAll} passes x ${full.dataset.validation} images x ${valPerImage.toFixed(4)} s = ${Math.round(valSec)} s`,
  );
  console.log(
    `extrapolated, not measured: --budget full (${trainImages} training images, batch ${full.training.batchSize}) ` +
      `would take ${Math.round(total)} s of CPU (${(total / 3600).toFixed(1)} h):\n  ${lines.join('\n  ')}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
