// Surgery benchmark: inference latency of original vs pruned models (wasm
// backend, batch 1 and 256) at 85% of parameters removed by neuron/filter
// pruning, and the time prune() takes on the CIFAR VGG-16 (BN).
//   npx nx run surgery:bench     (or: cd packages/surgery && npm run bench)
// Figures depend on the machine and its load; compare the ratios of one run.
import { cpus, loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { decompose } from '@normprune/layers';
import { prune } from '../src/index.js';
import { vgg16bn } from '../../../tools/testing/bench.js';

const TARGET_REMOVED = 0.85;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const init = (seed: number) => tfl.initializers.glorotUniform({ seed });

function lenet500300(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [784],
        units: 500,
        activation: 'relu',
        name: 'fc1',
        kernelInitializer: init(1),
      }),
      tfl.layers.dense({ units: 300, activation: 'relu', name: 'fc2', kernelInitializer: init(2) }),
      tfl.layers.dense({ units: 10, name: 'fc3', kernelInitializer: init(3) }),
    ],
  });
}

function lenet5(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 6,
        kernelSize: 5,
        padding: 'same',
        activation: 'relu',
        name: 'conv1',
        kernelInitializer: init(1),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({
        filters: 16,
        kernelSize: 5,
        activation: 'relu',
        name: 'conv2',
        kernelInitializer: init(2),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 120, activation: 'relu', name: 'fc1', kernelInitializer: init(3) }),
      tfl.layers.dense({ units: 84, activation: 'relu', name: 'fc2', kernelInitializer: init(4) }),
      tfl.layers.dense({ units: 10, name: 'fc3', kernelInitializer: init(5) }),
    ],
  });
}

/** Zeroes the kernel slices of `dead` units (the last kernel axis) of a layer. */
function killUnits(model: tfl.LayersModel, name: string, dead: Set<number>): void {
  const layer = model.getLayer(name);
  const [kernel, ...rest] = layer.getWeights();
  const v = Float32Array.from(kernel.dataSync() as Float32Array);
  const cout = kernel.shape[kernel.shape.length - 1];
  for (let p = 0; p < v.length; p++) if (dead.has(p % cout)) v[p] = 0;
  const t = tf.tensor(v, kernel.shape);
  layer.setWeights([t, ...rest]);
  t.dispose();
}

/**
 * Kills the same fraction of units, chosen at random, in every layer but the classifier
 * (`fraction` 1 leaves one unit per layer).
 */
function killFraction(model: tfl.LayersModel, fraction: number, seed: number): void {
  const r = rng(seed);
  const prunable = model.layers.filter((l) => ['Dense', 'Conv2D'].includes(l.getClassName())).slice(0, -1);
  for (const l of prunable) {
    const units = (l.outputShape as number[])[(l.outputShape as number[]).length - 1];
    const order = Array.from({ length: units }, (_, i) => i).sort(() => r() - 0.5);
    killUnits(model, l.name, new Set(order.slice(0, Math.min(units - 1, Math.round(fraction * units)))));
  }
}

/** The smallest killed fraction (step 0.01) at which pruning removes >= TARGET_REMOVED of the parameters. */
function atTargetSparsity(build: () => tfl.LayersModel): {
  original: tfl.LayersModel;
  pruned: tfl.LayersModel;
  fraction: number;
  removed: number;
} {
  for (let f = 0.6; f <= 0.99; f += 0.01) {
    const original = build();
    killFraction(original, f, 42);
    const { model, report } = prune(original);
    if (report.compression >= TARGET_REMOVED)
      return { original, pruned: model, fraction: f, removed: report.compression };
    original.dispose();
    model.dispose();
  }
  throw new Error('target sparsity not reached');
}

/**
 * Median milliseconds per predict() call of each model. The two models run alternately so that
 * load from other processes on the shared CPU hits both alike; the whole batch goes through in
 * one call (predict's default would split it into chunks of 32).
 */
async function latencyMs(models: tfl.LayersModel[], batch: number): Promise<number[]> {
  const shape = [batch, ...(models[0].inputs[0].shape.slice(1) as number[])];
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
  const run = async (m: tfl.LayersModel) => {
    const t0 = performance.now();
    const y = m.predict(x, { batchSize: batch }) as tf.Tensor;
    y.dataSync();
    y.dispose();
    return performance.now() - t0;
  };
  for (let i = 0; i < 3; i++) for (const m of models) await run(m);
  const times: number[][] = models.map(() => []);
  const start = performance.now();
  while (times[0].length < 15 || (performance.now() - start < 3000 && times[0].length < 300)) {
    for (let k = 0; k < models.length; k++) times[k].push(await run(models[k]));
  }
  x.dispose();
  return times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]);
}

async function main(): Promise<void> {
  const info = await initBackend({ prefer: 'wasm', quiet: true });
  const tensorsBefore = tf.memory().numTensors;
  console.log(`backend: ${info.backend} (simd ${info.simd}, threads ${info.threads}); ${info.reason}`);
  console.log(
    `median latency per predict() call, ms; 1-minute load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores at the start\n`,
  );
  const rows: string[][] = [
    ['model', 'killed units', 'params removed', 'batch', 'original ms', 'pruned ms', 'speedup', 'floor ms'],
  ];
  for (const [name, build] of [
    ['LeNet-500-300', lenet500300],
    ['LeNet-5', lenet5],
  ] as const) {
    const { original, pruned, fraction, removed } = atTargetSparsity(build);
    // The floor: the same layer stack pruned to one unit per hidden layer, i.e. the fixed cost
    // of a predict() call that no pruning can remove.
    const one = build();
    killFraction(one, 1, 1);
    const floor = prune(one).model;
    for (const batch of [1, 256]) {
      const [a, b, c] = await latencyMs([original, pruned, floor], batch);
      rows.push([
        name,
        `${(100 * fraction).toFixed(0)}%`,
        `${(100 * removed).toFixed(1)}%`,
        String(batch),
        a.toFixed(3),
        b.toFixed(3),
        `${(a / b).toFixed(2)}x`,
        c.toFixed(3),
      ]);
    }
    for (const m of [original, pruned, one, floor]) m.dispose();
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows)
    console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));

  console.log('\nprune() on the CIFAR VGG-16 (BN), 50% of filters and fc1 neurons zeroed at random:');
  const vgg = vgg16bn();
  killFraction(vgg, 0.5, 7);
  const params = vgg.countParams();
  const times: number[] = [];
  let report;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const res = prune(vgg);
    times.push(performance.now() - t0);
    report = res.report;
    res.model.dispose();
  }
  times.sort((a, b) => a - b);
  console.log(
    `  plain model, ${params.toLocaleString('en-US')} params: median ${(times[1] / 1000).toFixed(2)} s over 3 runs ` +
      `(min ${(times[0] / 1000).toFixed(2)} s); ${report!.iterations} analysis rounds; compression ${(100 * report!.compression).toFixed(1)}%`,
  );
  const dec = decompose(vgg, { granularity: { conv2d: 'filter' } });
  const t0 = performance.now();
  const res = prune(dec);
  const decTime = performance.now() - t0;
  console.log(`  decomposed model (fold + prune): ${(decTime / 1000).toFixed(2)} s`);
  res.model.dispose();
  dec.dispose();
  vgg.dispose();
  if (tf.memory().numTensors !== tensorsBefore)
    throw new Error(`the bench left ${tf.memory().numTensors - tensorsBefore} tensors behind`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
