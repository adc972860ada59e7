// Peak memory of training the CIFAR VGG-16 (BN) on wasm with normprune's
// kernels, with tfjs's own backward pass and with
// releaseSavedTensorsDuringBackprop installed. The wasm heap never shrinks,
// so each configuration runs in its own child process (one run of this
// script measures both, one after the other); the table gives the heap's size
// after the steps (its high-water mark), the peak of tf.memory().numBytes
// (every allocation watched through the engine state's counter), the loss and
// a hash of the trained weights' bits (the same in both: the release changes
// no value), and the time per step.
//
//   cd packages/runtime && npm run bench:backprop -- [--batch 64] [--steps 2] [--width 0.5]
//
// Not a test: a step of the full-width model at batch 128 takes tens of seconds.
import * as path from 'path';
import * as os from 'os';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { releaseSavedTensorsDuringBackprop } from '../src/backprop.js';
import { cifarBatch, childConfig, inChildren, option, vgg16bn } from '../../../tools/testing/bench.js';

const BATCH = option('--batch', 64);
const STEPS = option('--steps', 2);
const WIDTH = option('--width', 0.5);
const CHILD = childConfig();

type Config = 'upstream' | 'released';

interface Measured {
  heapMB: number;
  peakMB: number;
  loss: string;
  weights: string;
  seconds: number;
}

/** FNV-1a over the bits of every weight, as hex. */
function hashWeights(model: tfl.LayersModel): string {
  let h = 0x811c9dc5;
  for (const w of model.getWeights()) {
    const f = w.dataSync() as Float32Array;
    for (const u of new Uint32Array(f.buffer, f.byteOffset, f.length)) h = Math.imul(h ^ u, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

async function child(config: Config): Promise<Measured> {
  const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  setWasmPaths(dist + path.sep);
  registerWasmTrainingKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to start');
  if (config === 'released') releaseSavedTensorsDuringBackprop();
  const wasm = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm;
  const model = vgg16bn({ width: WIDTH, softmax: true });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  const { x, y } = cifarBatch(BATCH);
  // Every change of numBytes goes through this accessor.
  const state = (tf.engine() as unknown as { state: { numBytes: number } }).state;
  let bytes = state.numBytes;
  let peak = bytes;
  Object.defineProperty(state, 'numBytes', {
    configurable: true,
    enumerable: true,
    get: () => bytes,
    set: (v: number) => {
      bytes = v;
      if (v > peak) peak = v;
    },
  });
  const start = Date.now();
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) losses.push(Number(await model.trainOnBatch(x, y)));
  return {
    heapMB: wasm.HEAPU8.length / 2 ** 20,
    peakMB: peak / 2 ** 20,
    loss: losses.map((l) => l.toPrecision(9)).join(' '),
    weights: hashWeights(model),
    seconds: (Date.now() - start) / 1000 / STEPS,
  };
}

async function main(): Promise<void> {
  if (CHILD) {
    console.log(JSON.stringify(await child(CHILD as Config)));
    return;
  }
  const rows = inChildren<Config, Measured>(__filename, ['upstream', 'released']);
  console.log(
    `VGG-16 (BN), CIFAR, width ${WIDTH}, batch ${BATCH}, ${STEPS} SGD steps (trainOnBatch), wasm + normprune; ` +
      `load ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`,
  );
  console.log('| backward pass | wasm heap MB | peak numBytes MB | losses | weights hash | s per step |');
  console.log('| --- | ---: | ---: | --- | --- | ---: |');
  for (const [config, m] of rows) {
    const name = config === 'upstream' ? "tfjs's (upstream)" : 'releaseSavedTensorsDuringBackprop';
    console.log(
      `| ${name} | ${m.heapMB.toFixed(0)} | ${m.peakMB.toFixed(0)} | ${m.loss} | ${m.weights} | ${m.seconds.toFixed(1)} |`,
    );
  }
  const [up, rel] = rows.map(([, m]) => m);
  console.log(
    `released / upstream: wasm heap ${(rel.heapMB / up.heapMB).toFixed(2)}, peak numBytes ${(rel.peakMB / up.peakMB).toFixed(2)}; ` +
      `same losses and weights: ${rel.loss === up.loss && rel.weights === up.weights}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
