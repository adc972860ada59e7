// Forward+backward time of decomposed against plain layers, LeNet-500-300 and
// LeNet-5 at batch 128, on the backend initBackend picks (wasm preferred;
// NORMPRUNE_BACKEND overrides). Plain and decomposed steps alternate in one
// run, so the shared machine's load hits both alike; we report medians and
// their ratio. Not a test: it prints a table.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { decompose } from '@normprune/layers';

const BATCH = 128;
// At least MIN_ROUNDS pairs, and more until SECONDS per configuration: the
// median of many pairs is what stays stable on a loaded machine.
const MIN_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
// BENCH_ONLY=lenet_500_300 or lenet5: one model's rows (its printed name, matched whole).
const ONLY = process.env.BENCH_ONLY;
const WARMUP = 3;

function lenet500300(): tfl.LayersModel {
  return tfl.sequential({
    name: 'lenet_500_300',
    layers: [
      tfl.layers.flatten({ inputShape: [28, 28, 1] }),
      tfl.layers.dense({ units: 500, activation: 'relu' }),
      tfl.layers.dense({ units: 300, activation: 'relu' }),
      tfl.layers.dense({ units: 10 }),
    ],
  });
}

// Caffe's LeNet-5 (the thesis's): conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10.
function lenet5(): tfl.LayersModel {
  return tfl.sequential({
    name: 'lenet5',
    layers: [
      tfl.layers.conv2d({ inputShape: [28, 28, 1], filters: 20, kernelSize: 5 }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({ filters: 50, kernelSize: 5 }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 500, activation: 'relu' }),
      tfl.layers.dense({ units: 10 }),
    ],
  });
}

/** One forward+backward pass (gradients of every trainable weight), synchronised by reading one value. */
function step(model: tfl.LayersModel, x: tf.Tensor, labels: tf.Tensor): number {
  const start = performance.now();
  tf.tidy(() => {
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(
      () =>
        tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      vars,
    );
    // Reading forces every pending kernel to finish on asynchronous backends.
    value.dataSync();
    for (const g of Object.values(grads)) g.dataSync();
  });
  return performance.now() - start;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(): Promise<void> {
  const info = await initBackend({ prefer: 'wasm', quiet: true });
  console.log(
    `backend: ${info.backend} (${info.reason}); simd=${info.simd} threads=${info.threads} trainingKernels=${info.trainingKernels}`,
  );
  console.log(
    `batch ${BATCH}; per configuration >= ${MIN_ROUNDS} alternating plain/decomposed pairs and >= ${SECONDS} s, after ${WARMUP} warm-up steps;\n` +
      `ms are medians per step; pairs = number of pairs measured;\n` +
      `overhead = median over pairs of decomposed/plain - 1\n`,
  );
  const rows: string[][] = [
    [
      'model',
      'granularity',
      'pairs',
      'plain ms',
      'decomposed ms',
      'ratio (median of pairs)',
      'ratio of minima',
      'overhead',
    ],
  ];
  const configs = [
    { build: lenet500300, dense: 'output', conv2d: 'kernel' },
    { build: lenet500300, dense: 'input', conv2d: 'kernel' },
    { build: lenet5, dense: 'output', conv2d: 'kernel' },
    { build: lenet5, dense: 'output', conv2d: 'filter' },
  ] as const;
  const start = tf.memory().numTensors;
  for (const c of configs) {
    const plain = c.build();
    if (ONLY && plain.name !== ONLY) {
      plain.dispose();
      continue;
    }
    const decomposed = decompose(plain, { granularity: { dense: c.dense, conv2d: c.conv2d } });
    const x = tf.randomNormal([BATCH, 28, 28, 1]);
    const labels = tf.tidy(() => tf.oneHot(tf.randomUniform([BATCH], 0, 10, 'int32'), 10));
    for (let i = 0; i < WARMUP; i++) {
      step(plain, x, labels);
      step(decomposed, x, labels);
    }
    const tp: number[] = [];
    const td: number[] = [];
    const ratios: number[] = [];
    const until = performance.now() + SECONDS * 1000;
    for (let i = 0; i < MIN_ROUNDS || performance.now() < until; i++) {
      // Alternate the order, so neither side always runs on a warm cache;
      // the ratio of each adjacent pair cancels the drift of the machine's load.
      let p: number;
      let d: number;
      if (i % 2 === 0) {
        p = step(plain, x, labels);
        d = step(decomposed, x, labels);
      } else {
        d = step(decomposed, x, labels);
        p = step(plain, x, labels);
      }
      tp.push(p);
      td.push(d);
      ratios.push(d / p);
    }
    const p = median(tp);
    const d = median(td);
    const ratio = median(ratios);
    const best = Math.min(...td) / Math.min(...tp);
    const granularity = plain.name.startsWith('lenet5')
      ? `conv ${c.conv2d}, dense ${c.dense}`
      : `dense ${c.dense}`;
    rows.push([
      plain.name,
      granularity,
      String(ratios.length),
      p.toFixed(1),
      d.toFixed(1),
      ratio.toFixed(3),
      best.toFixed(3),
      `${((ratio - 1) * 100).toFixed(1)}%`,
    ]);
    tf.dispose([x, labels]);
    plain.dispose();
    decomposed.dispose();
  }
  // Every tensor a configuration made is gone (audit 29: the labels' int32 draw was left).
  if (tf.memory().numTensors !== start)
    throw new Error(`the bench left ${tf.memory().numTensors - start} tensors behind`);
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  for (const r of rows) console.log(r.map((cell, j) => cell.padEnd(widths[j])).join('  '));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
