// Group norms on wasm: groupSumSquares by average pool against tf.sum, for the
// directions the experiments decompose and for VGG-16's widest convolutions,
// with @normprune/runtime's kernels (whose AvgPool takes any channel count and
// whose Sum reduces leading axes without a transpose). Rounds interleave the
// two methods; the table gives medians and their ratio from this one run. Not
// a test: timings depend on machine and load.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@normprune/runtime';
import { groupSumSquares, POOL_CHANNELS } from '../src/operators.js';

const ROUNDS = Number(process.env.PROX_BENCH_ROUNDS ?? 15);
const CALLS = 5;

const CASES: { what: string; shape: number[]; axes: number[] }[] = [
  { what: "LeNet-500-300 dense1 'output'", shape: [784, 500], axes: [0] },
  { what: "LeNet-5 conv2 'kernel'", shape: [5, 5, 20, 50], axes: [0, 1] },
  { what: "LeNet-5 conv2 'filter'", shape: [5, 5, 20, 50], axes: [0, 1, 2] },
  { what: "conv 64x64 'kernel'", shape: [3, 3, 64, 64], axes: [0, 1] },
  { what: "conv 128x128 'kernel'", shape: [3, 3, 128, 128], axes: [0, 1] },
  { what: "VGG-16 conv 256x256 'kernel'", shape: [3, 3, 256, 256], axes: [0, 1] },
  { what: "VGG-16 conv 512x512 'kernel'", shape: [3, 3, 512, 512], axes: [0, 1] },
  { what: "VGG-16 conv 512x512 'filter'", shape: [3, 3, 512, 512], axes: [0, 1, 2] },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function time(x: tf.Tensor, axes: number[], method: 'pool' | 'sum'): number {
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) {
    const s = groupSumSquares(x, axes, method);
    s.dataSync();
    s.dispose();
  }
  return (performance.now() - t0) / CALLS;
}

async function main(): Promise<void> {
  const info = await initBackend({ prefer: 'wasm', quiet: true });
  if (info.tfBackendName !== 'wasm') throw new Error(`the wasm backend did not start: ${info.reason}`);
  console.log(`backend: ${info.tfBackendName} (training kernels: ${info.trainingKernels})`);
  console.log(
    `median of ${ROUNDS} rounds x ${CALLS} calls; 'auto' pools up to ${POOL_CHANNELS.toLocaleString('en-US')} groups`,
  );
  console.log('');
  console.log('| direction | shape | groups | pool, ms | sum, ms | sum / pool |');
  console.log('|---|---|---:|---:|---:|---:|');
  const tensors = tf.memory().numTensors;
  for (const c of CASES) {
    const x = tf.randomNormal(c.shape, 0, 1, 'float32', 1);
    const groups = c.shape.slice(c.axes.length).reduce((a, b) => a * b, 1);
    // Warm-up: XNNPACK operators created, heap grown.
    for (let i = 0; i < 2; i++) {
      time(x, c.axes, 'pool');
      time(x, c.axes, 'sum');
    }
    const pool: number[] = [];
    const sum: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      pool.push(time(x, c.axes, 'pool'));
      sum.push(time(x, c.axes, 'sum'));
    }
    x.dispose();
    const [p, s] = [median(pool), median(sum)];
    console.log(
      `| ${c.what} | ${JSON.stringify(c.shape)} over ${JSON.stringify(c.axes)} | ${groups.toLocaleString('en-US')} | ${p.toFixed(2)} | ${s.toFixed(2)} | ${(s / p).toFixed(2)}x |`,
    );
  }
  if (tf.memory().numTensors !== tensors)
    throw new Error(`tensor leak: ${tensors} -> ${tf.memory().numTensors}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
