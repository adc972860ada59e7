// Probes of upstream behaviour that @normprune/runtime works around, each in a process of its
// own (a crash takes its process down), with upstream's kernels or with ours:
// - AvgPool over [1, n, 1, C]: where upstream's XNNPACK pool runs off the 64 KB wasm stack;
// - tfjs-core's saved tensors after a forward pass that throws under tf.grad, on cpu, without
//   and with releaseSavedTensorsDuringBackprop().
// Not a test: it prints what happened.
//
//   cd packages/runtime && node --require ../../scripts/ts-register.cjs bench/upstream-limits.ts
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { childConfig, inChildren } from '../../../tools/testing/bench.js';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../src/kernels/index.js';
import { releaseSavedTensorsDuringBackprop } from '../src/backprop.js';
import { setWasmBackendWithThreads } from '../src/kernels/threads.js';

type Result = { outcome: string };

async function wasm(threads: number, ours: boolean): Promise<void> {
  setWasmPaths(
    path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep,
  );
  registerWasmTrainingKernels();
  if (threads > 1) await setWasmBackendWithThreads(threads);
  else if (!(await tf.setBackend('wasm'))) throw new Error('wasm did not start');
  if (!ours) unregisterWasmTrainingKernels();
}

/** `pool:N:C:THREADS:ours|upstream` */
async function pool(n: number, c: number, threads: number, ours: boolean): Promise<string> {
  await wasm(threads, ours);
  const y = tf.avgPool(tf.ones([1, n, 1, c]) as tf.Tensor4D, [n, 1], 1, 'valid');
  const v = y.dataSync();
  return v.every((x) => Math.abs(x - 1) < 1e-6) ? 'right' : 'wrong values';
}

/** `tape:released|upstream`: three failed steps on cpu, tensors left. */
async function tape(released: boolean): Promise<string> {
  await tf.setBackend('cpu');
  if (released) releaseSavedTensorsDuringBackprop();
  const x = tf.ones([4, 5]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    try {
      tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(tf.square(tf.exp(v)), tf.ones([7, 7]))))(x));
    } catch {
      /* the matMul's shapes do not match: the forward pass throws */
    }
  }
  return `${tf.memory().numTensors - before} tensors left after 3 failed steps`;
}

async function child(config: string): Promise<Result> {
  const [kind, ...p] = config.split(':');
  if (kind === 'pool') return { outcome: await pool(+p[0], +p[1], +p[2], p[3] === 'ours') };
  return { outcome: await tape(p[0] === 'released') };
}

async function main(): Promise<void> {
  const config = childConfig();
  if (config) {
    let r: Result;
    try {
      r = await child(config);
    } catch (e) {
      r = { outcome: `threw: ${(e as Error).message.slice(0, 60)}` };
    }
    console.log(JSON.stringify(r));
    return;
  }
  const probes = [
    'pool:9:8192:1:upstream',
    'pool:9:16336:1:upstream',
    'pool:9:16352:1:upstream',
    'pool:9:16384:1:upstream',
    'pool:9:40000:2:upstream',
    'pool:7:200000:1:upstream',
    'pool:9:262144:1:ours',
    'pool:9:40000:2:ours',
    'tape:upstream',
    'tape:released',
  ];
  for (const probe of probes) {
    let outcome: string;
    try {
      outcome = inChildren<string, Result>(__filename, [probe])[0][1].outcome;
    } catch (e) {
      const err = String((e as { stderr?: string }).stderr ?? e);
      outcome = `process died: ${/memory access out of bounds/.test(err) ? 'memory access out of bounds' : err.slice(0, 60)}`;
    }
    console.log(`| ${probe} | ${outcome} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
