// Training throughput on real MNIST (batch 128, SGD) for LeNet-500-300 and
// LeNet-5 on every backend present, measured in one run and printed as a
// table with ratios. Not a test: figures depend on the machine and its load.
//
//   cd packages/runtime && npm run bench [-- --repeat 3 --seconds 3 --threads 2 --skip-cpu]
//
// The threaded wasm binary is chosen when the backend first starts, so the
// threaded configuration runs in a child process (one per repeat, interleaved
// with the in-process measurements so that load from other processes hits all
// configurations alike).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { execFileSync } from 'child_process';
import * as path from 'path';
import * as os from 'os';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../src/kernels/index.js';
import { setWasmBackendWithThreads } from '../src/kernels/threads.js';
import { readMnistTrain, MnistTrain } from './idx.js';
import { buildModel, ModelName } from './models.js';
import { option } from '../../../tools/testing/bench.js';

const BATCH = 128;
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const REPEAT = option('--repeat', 3);
const MIN_SECONDS = option('--seconds', 3);
const THREADS = option('--threads', 2);
const CHILD = flag('--child');

type Config = 'cpu' | 'wasm (upstream)' | 'wasm + normprune' | 'wasm + normprune, threads' | 'tfjs-node';
const WASM_OPTS = () => ({ warmup: 3, minSteps: 5, maxSteps: 400, seconds: MIN_SECONDS });

interface Result {
  model: ModelName;
  config: Config;
  samplesPerSec: number[]; // one per repeat
  note?: string;
  leak?: number;
  loss?: [number, number];
}

function makeBatches(data: MnistTrain, count: number): { xs: tf.Tensor4D; ys: tf.Tensor2D }[] {
  const out = [];
  for (let b = 0; b < count; b++) {
    const start = b * BATCH;
    const pixels = new Float32Array(BATCH * 784);
    for (let i = 0; i < pixels.length; i++) pixels[i] = data.images[start * 784 + i] / 255;
    const labels = Int32Array.from(data.labels.subarray(start, start + BATCH));
    out.push({
      xs: tf.tensor4d(pixels, [BATCH, 28, 28, 1]),
      ys: tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), 10), 'float32') as tf.Tensor2D),
    });
  }
  return out;
}

/** Samples/s for one model on the current backend: warm up, then time whole steps. */
async function measure(
  name: ModelName,
  data: MnistTrain,
  opts: { warmup: number; minSteps: number; maxSteps: number; seconds: number },
): Promise<{ samplesPerSec: number; leak: number; loss: [number, number] }> {
  const model = buildModel(name);
  const batches = makeBatches(data, 8);
  let step = 0;
  const losses: number[] = [];
  const run = async () => {
    const { xs, ys } = batches[step++ % batches.length];
    const loss = await model.trainOnBatch(xs, ys);
    losses.push(Array.isArray(loss) ? loss[0] : loss);
  };
  for (let i = 0; i < opts.warmup; i++) await run();
  const tensorsBefore = tf.memory().numTensors;
  let steps = 0;
  const t0 = performance.now();
  while (steps < opts.maxSteps && (steps < opts.minSteps || performance.now() - t0 < opts.seconds * 1000)) {
    await run();
    steps++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const leak = tf.memory().numTensors - tensorsBefore;
  for (const b of batches) tf.dispose([b.xs, b.ys]);
  model.dispose();
  // Printed, not checked: a row that trains shows the loss over the same 8 batches falling.
  return { samplesPerSec: (steps * BATCH) / seconds, leak, loss: [losses[0], losses[losses.length - 1]] };
}

async function useConfig(config: Config): Promise<void> {
  if (config === 'cpu') {
    await tf.setBackend('cpu');
  } else if (config === 'tfjs-node') {
    await tf.setBackend('tensorflow');
  } else {
    if (config === 'wasm + normprune') registerWasmTrainingKernels();
    else unregisterWasmTrainingKernels();
    await tf.setBackend('wasm');
  }
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

/** Child process: the threaded configuration, one measurement per model, as JSON. */
async function child(): Promise<void> {
  const data = readMnistTrain();
  const threads = await setWasmBackendWithThreads(THREADS);
  registerWasmTrainingKernels();
  const out: Record<string, { samplesPerSec: number; leak: number; loss: [number, number] }> = {};
  for (const model of ['LeNet-500-300', 'LeNet-5'] as ModelName[])
    out[model] = await measure(model, data, WASM_OPTS());
  console.log(JSON.stringify({ threads, out }));
}

function runChild(): {
  threads: number;
  out: Record<string, { samplesPerSec: number; leak: number; loss: [number, number] }>;
} {
  const register = path.join(__dirname, '..', '..', '..', 'scripts', 'ts-register.cjs');
  const stdout = execFileSync(
    process.execPath,
    [
      '--require',
      register,
      __filename,
      '--child',
      '--threads',
      String(THREADS),
      '--seconds',
      String(MIN_SECONDS),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const last = stdout.trim().split('\n').pop()!;
  return JSON.parse(last);
}

async function main(): Promise<void> {
  const data = readMnistTrain();
  const wasmDist = path.join(
    path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')),
    'dist',
  );
  setWasmPaths(wasmDist + path.sep);
  await tf.setBackend('wasm');
  const wasmInfo = {
    simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
  };

  let nodeStatus = 'not installed';
  try {
    const nodePackage = '@tensorflow/tfjs-node';
    require.resolve(nodePackage);
    try {
      await import(nodePackage);
      nodeStatus = 'ok';
    } catch (e) {
      nodeStatus = `fails to load: ${String((e as Error).message).split('\n')[0]}`;
    }
  } catch {
    nodeStatus = 'not installed';
  }

  const models: ModelName[] = ['LeNet-500-300', 'LeNet-5'];
  const configs: Config[] = [
    'cpu',
    'wasm (upstream)',
    'wasm + normprune',
    'wasm + normprune, threads',
    'tfjs-node',
  ];
  const results: Result[] = [];
  for (const model of models) {
    for (const config of configs) results.push({ model, config, samplesPerSec: [] });
  }
  const get = (m: ModelName, c: Config) => results.find((r) => r.model === m && r.config === c)!;

  for (const model of models) {
    // cpu is ~100x slower: a few steps only (LeNet-5: one step, no warm-up), measured once.
    const cpu = get(model, 'cpu');
    if (flag('--skip-cpu')) cpu.note = 'skipped';
    else {
      await useConfig('cpu');
      const lenet5 = model === 'LeNet-5';
      const r = await measure(model, data, {
        warmup: lenet5 ? 0 : 1,
        minSteps: lenet5 ? 1 : 3,
        maxSteps: 3,
        seconds: 0,
      });
      cpu.samplesPerSec.push(r.samplesPerSec);
      cpu.leak = r.leak;
      cpu.loss = r.loss;
    }
    const node = get(model, 'tfjs-node');
    if (nodeStatus !== 'ok') node.note = nodeStatus;
  }
  let threadsUsed = 0;
  for (let rep = 0; rep < REPEAT; rep++) {
    for (const model of models) {
      for (const config of [
        'wasm (upstream)',
        'wasm + normprune',
        ...(nodeStatus === 'ok' ? ['tfjs-node'] : []),
      ] as Config[]) {
        const res = get(model, config);
        if (res.note) continue;
        await useConfig(config);
        if (model === 'LeNet-5' && tf.getKernel('Conv2DBackpropFilter', tf.getBackend()) == null) {
          res.note = 'n/a (no Conv2DBackpropFilter)';
          continue;
        }
        const r = await measure(model, data, WASM_OPTS());
        res.samplesPerSec.push(r.samplesPerSec);
        res.leak = Math.max(res.leak ?? 0, r.leak);
        res.loss = r.loss;
      }
    }
    try {
      const c = runChild();
      threadsUsed = c.threads;
      for (const model of models) {
        const res = get(model, 'wasm + normprune, threads');
        res.samplesPerSec.push(c.out[model].samplesPerSec);
        res.leak = Math.max(res.leak ?? 0, c.out[model].leak);
        res.loss = c.out[model].loss;
      }
    } catch (e) {
      for (const model of models)
        get(model, 'wasm + normprune, threads').note =
          `failed: ${String((e as Error).message).split('\n')[0]}`;
    }
  }
  for (const r of results)
    if (r.config === 'wasm + normprune, threads')
      r.config = `wasm + normprune, ${threadsUsed} threads` as Config;

  const best = (r: Result) => (r.samplesPerSec.length ? Math.max(...r.samplesPerSec) : NaN);
  const lines: string[] = [];
  lines.push(
    `MNIST training, batch ${BATCH}, SGD; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}); ` +
      `wasm SIMD ${wasmInfo.simd ? 'on' : 'off'}; best of ${REPEAT} runs of >= ${MIN_SECONDS} s (wasm); cpu: a few steps once`,
  );
  lines.push('');
  lines.push(
    '| model | backend | samples/s (best) | spread (min-max) | vs cpu (once) | vs upstream wasm | tensor leak | loss first → last |',
  );
  lines.push('|---|---|---:|---|---:|---:|---:|---|');
  for (const r of results) {
    const b = best(r);
    const cpu = best(get(r.model, 'cpu'));
    const up = best(get(r.model, 'wasm (upstream)'));
    const spread =
      r.samplesPerSec.length > 1
        ? `${fmt(Math.min(...r.samplesPerSec))}-${fmt(Math.max(...r.samplesPerSec))}`
        : '';
    const ratio = (x: number) => (Number.isFinite(b) && Number.isFinite(x) ? `${(b / x).toFixed(1)}x` : '');
    // cpu is a few steps measured once (LeNet-5: one cold step): its ratio is an order of
    // magnitude, printed to two significant figures.
    const vsCpu = Number.isFinite(b) && Number.isFinite(cpu) ? `~${Number((b / cpu).toPrecision(2))}x` : '';
    lines.push(
      `| ${r.model} | ${r.config} | ${Number.isFinite(b) ? fmt(b) : (r.note ?? 'n/a')} | ${spread} | ${vsCpu} | ${ratio(up)} | ${r.leak ?? ''} | ${
        r.loss ? `${r.loss[0].toFixed(3)} → ${r.loss[1].toFixed(3)}` : ''
      } |`,
    );
  }
  console.log(lines.join('\n'));
}

(CHILD ? child() : main()).catch((e) => {
  console.error(e);
  process.exit(1);
});
