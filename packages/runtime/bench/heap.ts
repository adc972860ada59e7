// wasm heap of training the CIFAR VGG-16 (BN) on wasm with normprune's
// kernels, with the Identity and same-dtype Cast kernels sharing buffers (as
// registered) and with upstream's copying ones put back, at one batch size.
// The heap never shrinks, so each configuration runs in its own child
// process; the table gives the heap's size after the steps (its high-water
// mark), the bytes upstream's Identity/Cast allocated, and the loss (the same
// bits in both: sharing changes no value).
//
//   cd packages/runtime && node --require ../../scripts/ts-register.cjs bench/heap.ts [--batch 128] [--steps 2] [--width 1]
//
// Not a test: a step of the full-width model at batch 128 takes tens of seconds.
import * as path from 'path';
import * as os from 'os';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { cifarBatch, childConfig, inChildren, option, vgg16bn } from '../../../tools/testing/bench.js';

const BATCH = option('--batch', 128);
const STEPS = option('--steps', 2);
const WIDTH = option('--width', 1);
const CHILD = childConfig();

type Config = 'shared' | 'copying';

interface Measured {
  heapMB: number;
  copiedMB: number;
  loss: number;
  seconds: number;
}

async function child(config: Config): Promise<Measured> {
  const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  setWasmPaths(dist + path.sep);
  const upstream = { Identity: tf.getKernel('Identity', 'wasm')!, Cast: tf.getKernel('Cast', 'wasm')! };
  registerWasmTrainingKernels();
  if (config === 'copying') {
    for (const name of ['Identity', 'Cast'] as const) {
      tf.unregisterKernel(name, 'wasm');
      tf.registerKernel(upstream[name]);
    }
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to start');
  const wasm = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array; _malloc(n: number): number } }).wasm;
  // Bytes the Identity and Cast kernels allocate (upstream's copies).
  let copied = 0;
  for (const name of ['Identity', 'Cast'] as const) {
    const kernel = tf.getKernel(name, 'wasm')!;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      ...kernel,
      kernelFunc: (a) => {
        const malloc = wasm._malloc;
        wasm._malloc = (n: number) => ((copied += n), malloc(n));
        try {
          return kernel.kernelFunc(a);
        } finally {
          wasm._malloc = malloc;
        }
      },
    });
  }
  const model = vgg16bn({ width: WIDTH, softmax: true });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  const { x, y } = cifarBatch(BATCH);
  const start = Date.now();
  let loss = NaN;
  for (let s = 0; s < STEPS; s++) loss = Number(await model.trainOnBatch(x, y));
  return {
    heapMB: wasm.HEAPU8.length / 2 ** 20,
    copiedMB: copied / 2 ** 20 / STEPS,
    loss,
    seconds: (Date.now() - start) / 1000 / STEPS,
  };
}

async function main(): Promise<void> {
  if (CHILD) {
    console.log(JSON.stringify(await child(CHILD as Config)));
    return;
  }
  const rows = inChildren<Config, Measured>(__filename, ['shared', 'copying']);
  console.log(
    `VGG-16 (BN), CIFAR, width ${WIDTH}, batch ${BATCH}, ${STEPS} SGD steps (trainOnBatch), wasm + normprune; ` +
      `load ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`,
  );
  console.log('| Identity / Cast | wasm heap MB | Identity/Cast allocs MB per step | loss | s per step |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [config, m] of rows) {
    const name = config === 'shared' ? 'shared buffers (normprune)' : 'copies (upstream)';
    console.log(
      `| ${name} | ${m.heapMB.toFixed(0)} | ${m.copiedMB.toFixed(1)} | ${m.loss} | ${m.seconds.toFixed(1)} |`,
    );
  }
  const [shared, copying] = rows.map(([, m]) => m);
  console.log(`heap ratio copies / shared: ${(copying.heapMB / shared.heapMB).toFixed(2)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
