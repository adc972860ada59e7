// Cost of the proximal step: one LeNet-500-300 training step (decomposed
// Dense layers, batch 128, random data) with ProximalSGD / ProximalAdam against
// the same model with tf.train.sgd / momentum / adam, on the wasm backend when
// available. Rounds interleave the configurations and the table reports medians
// and ratios from this one run. Not a test: timings depend on machine and load.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import { ProximalAdam, ProximalSGD } from '@normprune/prox';

const BATCH = 128;
const ROUNDS = Number(process.env.PROX_BENCH_ROUNDS ?? 25);
const STEPS = Number(process.env.PROX_BENCH_STEPS ?? 2);

async function initBackend(): Promise<string> {
  try {
    // The runtime registers the wasm training kernels (transposed matMuls);
    // without them the wasm baseline is slower and the overhead looks smaller.
    const runtime = (await import('@normprune/runtime')) as typeof import('@normprune/runtime');
    const info = await runtime.initBackend({ prefer: 'wasm', quiet: true });
    return `${info.tfBackendName} (${info.reason}; training kernels: ${info.trainingKernels})`;
  } catch (e) {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const path = await import('path');
    wasm.setWasmPaths(
      path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') +
        path.sep,
    );
    await tf.setBackend('wasm');
    return `wasm (plain, without normprune training kernels: ${(e as Error).message})`;
  }
}

function lenet(): tfl.Sequential {
  const model = tfl.sequential();
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  model.add(
    decomposedDense({ inputShape: [784], units: 500, activation: 'relu', kernelInitializer: init(1) }),
  );
  model.add(decomposedDense({ units: 300, activation: 'relu', kernelInitializer: init(2) }));
  model.add(decomposedDense({ units: 10, activation: 'softmax', kernelInitializer: init(3) }));
  return model;
}

interface Config {
  name: string;
  model: tfl.Sequential;
  times: number[];
}

function config(name: string, make: (model: tfl.Sequential) => tf.Optimizer): Config {
  const model = lenet();
  model.compile({ optimizer: make(model), loss: 'categoricalCrossentropy' });
  return { name, model, times: [] };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const xs = tf.randomUniform([BATCH, 784], 0, 1, 'float32', 1);
  const ys = tf.oneHot(tf.randomUniform([BATCH], 0, 10, 'int32', 2) as tf.Tensor1D, 10);
  const lambda = 1e-4;
  const configs: Config[] = [
    config('tf.train.sgd', () => tf.train.sgd(0.05)),
    config('ProximalSGD', (m) => new ProximalSGD({ learningRate: 0.05, lambda, magnitudes: magnitudes(m) })),
    config('tf.train.momentum', () => tf.train.momentum(0.05, 0.9)),
    config(
      'ProximalSGD momentum',
      (m) => new ProximalSGD({ learningRate: 0.05, momentum: 0.9, lambda, magnitudes: magnitudes(m) }),
    ),
    config('tf.train.adam', () => tf.train.adam(1e-3)),
    config(
      'ProximalAdam',
      (m) => new ProximalAdam({ learningRate: 1e-3, lambda, magnitudes: magnitudes(m) }),
    ),
  ];
  // warm-up: kernels compiled, optimiser state created
  for (const c of configs) for (let i = 0; i < 3; i++) await c.model.trainOnBatch(xs, ys);
  const tensors = tf.memory().numTensors;
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of configs) {
      const t0 = performance.now();
      for (let i = 0; i < STEPS; i++) await c.model.trainOnBatch(xs, ys);
      c.times.push((performance.now() - t0) / STEPS);
    }
  }
  if (tf.memory().numTensors !== tensors)
    throw new Error(`tensor leak: ${tensors} -> ${tf.memory().numTensors}`);

  // The optimiser update alone (applyGradients with fixed gradients), where the
  // extra work lives: its difference to the plain update, over the plain full
  // step, is the overhead with less noise than the difference of two full steps.
  const applyTimes = new Map<Config, number[]>(configs.map((c) => [c, []]));
  const grads = configs.map((c) =>
    tf.variableGrads(
      () =>
        tf.losses.softmaxCrossEntropy(ys, c.model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar,
      c.model.trainableWeights.map((w) => w.read() as tf.Variable),
    ),
  );
  for (let r = 0; r < ROUNDS; r++) {
    configs.forEach((c, k) => {
      const t0 = performance.now();
      for (let i = 0; i < STEPS; i++) c.model.optimizer.applyGradients(grads[k].grads);
      // the update is asynchronous on some backends: wait for the last variable
      c.model.trainableWeights[0].read().dataSync();
      applyTimes.get(c)!.push((performance.now() - t0) / STEPS);
    });
  }
  grads.forEach((g) => tf.dispose([g.value, ...Object.values(g.grads)]));

  console.log(`backend: ${backend}`);
  console.log(
    `LeNet-500-300 (decomposed Dense, 784-500-300-10), batch ${BATCH}, median of ${ROUNDS} rounds x ${STEPS} steps`,
  );
  console.log('');
  console.log(
    '| optimiser | ms / step | samples / s | step vs plain | update alone, ms | (update - plain update) / plain step |',
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
  for (let i = 0; i < configs.length; i += 2) {
    const base = median(configs[i].times);
    const baseApply = median(applyTimes.get(configs[i])!);
    for (const c of [configs[i], configs[i + 1]]) {
      const m = median(c.times);
      const a = median(applyTimes.get(c)!);
      const plain = c === configs[i];
      console.log(
        `| ${c.name} | ${m.toFixed(2)} | ${Math.round((1000 * BATCH) / m)} | ${plain ? '' : pct(m / base - 1)} | ${a.toFixed(2)} | ${plain ? '' : pct((a - baseApply) / base)} |`,
      );
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
