// Per-kernel time of one training step on wasm, to see what dominates.
//   node --require ../../scripts/ts-register.cjs bench/profile.ts [LeNet-5|LeNet-500-300|VGG-CIFAR] [--upstream] [--threads N]
// VGG-CIFAR is a small VGG-style net (conv3x3 + BatchNorm + ReLU + MaxPool) on
// random 32x32x3 inputs: the profile depends on shapes, not on the pixels.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as path from 'path';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { setWasmBackendWithThreads } from '../src/kernels/threads.js';
import { buildModel, ModelName } from './models.js';

function vggCifar(): tfl.LayersModel {
  const model = tfl.sequential();
  let first = true;
  for (const filters of [32, 32, 'M', 64, 64, 'M', 128, 128, 'M'] as const) {
    if (filters === 'M') {
      model.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
      continue;
    }
    model.add(
      tfl.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        ...(first ? { inputShape: [32, 32, 3] } : {}),
      }),
    );
    first = false;
    model.add(tfl.layers.batchNormalization());
    model.add(tfl.layers.reLU());
  }
  model.add(tfl.layers.flatten());
  model.add(tfl.layers.dense({ units: 10, activation: 'softmax' }));
  model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' });
  return model;
}

async function main(): Promise<void> {
  const which = process.argv[2] ?? 'LeNet-5';
  const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  setWasmPaths(dist + path.sep);
  if (!process.argv.includes('--upstream')) registerWasmTrainingKernels();
  const t = process.argv.indexOf('--threads');
  if (t >= 0) console.log('threads', await setWasmBackendWithThreads(Number(process.argv[t + 1])));
  else await tf.setBackend('wasm');
  const batch = 128;
  const model = which === 'VGG-CIFAR' ? vggCifar() : buildModel(which as ModelName);
  const inShape = which === 'VGG-CIFAR' ? [32, 32, 3] : [28, 28, 1];
  const xs = tf.randomUniform([batch, ...inShape]);
  const ys = tf.cast(tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32') as tf.Tensor1D, 10), 'float32');
  for (let i = 0; i < 3; i++) await model.trainOnBatch(xs, ys);
  const steps = 5;
  const totals = new Map<string, { ms: number; calls: number }>();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(async () => {
      await model.trainOnBatch(xs, ys);
    });
    for (const k of info.kernels) {
      const t = totals.get(k.name) ?? { ms: 0, calls: 0 };
      t.ms += Number(k.kernelTimeMs);
      t.calls++;
      totals.set(k.name, t);
    }
  }
  const wall = (performance.now() - t0) / steps;
  const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const kernelMs = rows.reduce((s, [, v]) => s + v.ms, 0) / steps;
  console.log(
    `${which}, batch ${batch}, wasm: ${wall.toFixed(1)} ms/step with profiling (${((batch / wall) * 1000).toFixed(0)} samples/s), kernels ${kernelMs.toFixed(1)} ms`,
  );
  for (const [name, v] of rows.slice(0, 15)) {
    console.log(
      `${name.padEnd(24)} ${(v.ms / steps).toFixed(2).padStart(8)} ms  ${String(v.calls / steps).padStart(4)} calls`,
    );
  }
  tf.dispose([xs, ys]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
