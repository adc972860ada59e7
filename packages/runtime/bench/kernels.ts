// Per-kernel comparison, upstream wasm vs normprune's kernels, in CPU time per
// call (process.cpuUsage), which is less disturbed by other processes than
// wall time on a shared machine. Best of 3 rounds of 5 calls.
//   node --require ../../scripts/ts-register.cjs bench/kernels.ts
// With --threads N it instead times a 1024x1024 matMul in wall time on the
// threaded build (run it with 1 and 2 to compare), and shows how the CPU time
// splits between the main thread and the pool threads.
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'fs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { setWasmBackendWithThreads } from '../src/kernels/threads.js';

type Fn = (args: {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs: tf.NamedAttrMap;
}) => unknown;

/** A time in ms: sub-millisecond ones to three decimals, so that ratios to them mean something. */
function ms(v: number): string {
  return v < 1 ? v.toFixed(3) : v.toFixed(1);
}

function cpuMs(f: () => tf.TensorInfo, backend: tf.KernelBackend): number {
  let best = Infinity;
  backend.disposeData(f().dataId);
  for (let round = 0; round < 3; round++) {
    const c = process.cpuUsage();
    for (let i = 0; i < 5; i++) backend.disposeData(f().dataId);
    const u = process.cpuUsage(c);
    best = Math.min(best, (u.user + u.system) / 5000);
  }
  return best;
}

/** CPU ticks of this process's main thread and of all its other threads (Linux /proc). */
function threadTicks(): { main: number; others: number } | null {
  try {
    let main = 0;
    let others = 0;
    for (const tid of fs.readdirSync('/proc/self/task')) {
      const fields = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      if (Number(tid) === process.pid) main += ticks;
      else others += ticks;
    }
    return { main, others };
  } catch {
    return null;
  }
}

async function threads(n: number): Promise<void> {
  const got = await setWasmBackendWithThreads(n);
  const m = tf.randomNormal([1024, 1024]);
  const before = threadTicks();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t = performance.now();
    for (let i = 0; i < 5; i++) {
      const r = tf.matMul(m, m);
      r.dataSync();
      r.dispose();
    }
    best = Math.min(best, (performance.now() - t) / 5);
  }
  const after = threadTicks();
  // Ticks spent outside the main thread show whether the pool threads computed.
  const share =
    before && after
      ? `; CPU ticks main thread ${after.main - before.main}, other threads ${after.others - before.others}`
      : '';
  console.log(
    `threaded build, ${got} thread(s): 1024x1024 matMul ${best.toFixed(1)} ms wall (best of 5 rounds of 5)${share}`,
  );
}

async function main(): Promise<void> {
  const t = process.argv.indexOf('--threads');
  if (t >= 0) return threads(Number(process.argv[t + 1]));
  await tf.setBackend('wasm');
  const backend = tf.backend();
  const upstream = (name: string) => tf.getKernel(name, 'wasm')!.kernelFunc as unknown as Fn;
  const up = {
    BatchMatMul: upstream('BatchMatMul'),
    Conv2D: upstream('Conv2D'),
    Conv2DBackpropInput: upstream('Conv2DBackpropInput'),
    MaxPoolGrad: upstream('MaxPoolGrad'),
    Tile: upstream('Tile'),
    Sum: upstream('Sum'),
    Mean: upstream('Mean'),
    Add: upstream('Add'),
    Multiply: upstream('Multiply'),
  };
  registerWasmTrainingKernels();
  const ours = (name: string) => tf.getKernel(name, 'wasm')!.kernelFunc as unknown as Fn;
  const rows: string[] = ['| kernel | shape | upstream ms | normprune ms |', '|---|---|---:|---:|'];

  const m = tf.randomNormal([512, 512]);
  for (const [ta, tb] of [
    [false, false],
    [true, false],
    [false, true],
  ] as const) {
    const args = {
      inputs: { a: m, b: m },
      backend,
      attrs: { transposeA: ta, transposeB: tb } as unknown as tf.NamedAttrMap,
    };
    const a = cpuMs(() => up.BatchMatMul(args) as tf.TensorInfo, backend);
    const b = cpuMs(() => ours('BatchMatMul')(args) as tf.TensorInfo, backend);
    rows.push(`| BatchMatMul | 512x512, transposeA ${ta}, transposeB ${tb} | ${ms(a)} | ${ms(b)} |`);
  }
  const convs: [string, number[], number[], 'same' | 'valid'][] = [
    ['LeNet-5 conv1', [128, 28, 28, 1], [5, 5, 1, 20], 'valid'],
    ['LeNet-5 conv2', [128, 12, 12, 20], [5, 5, 20, 50], 'valid'],
    ['VGG 3x3x32 @32x32', [128, 32, 32, 32], [3, 3, 32, 32], 'same'],
    ['VGG 3x3x64 @16x16', [128, 16, 16, 64], [3, 3, 64, 64], 'same'],
  ];
  for (const [name, xs, ws, pad] of convs) {
    const x = tf.randomNormal(xs);
    const w = tf.randomNormal(ws);
    const info = tf.backend_util.computeConv2DInfo(
      xs as [number, number, number, number],
      ws as [number, number, number, number],
      1,
      1,
      pad,
    );
    const dy = tf.randomNormal(info.outShape);
    const base = { strides: 1, pad, dataFormat: 'NHWC' };
    const fwd = {
      inputs: { x, filter: w },
      backend,
      attrs: { ...base, dilations: 1 } as unknown as tf.NamedAttrMap,
    };
    const bpf = {
      inputs: { x, dy },
      backend,
      attrs: { ...base, filterShape: ws } as unknown as tf.NamedAttrMap,
    };
    const bpi = {
      inputs: { dy, filter: w },
      backend,
      attrs: { ...base, inputShape: xs } as unknown as tf.NamedAttrMap,
    };
    // Upstream's own Conv2D (normprune registers a wrapper of it for explicit padding).
    const conv = cpuMs(() => up.Conv2D(fwd) as tf.TensorInfo, backend);
    rows.push(`| Conv2D (upstream, for scale) | ${name} | ${ms(conv)} | |`);
    rows.push(
      `| Conv2DBackpropFilter | ${name} | missing | ${ms(cpuMs(() => ours('Conv2DBackpropFilter')(bpf) as tf.TensorInfo, backend))} |`,
    );
    const a = cpuMs(() => up.Conv2DBackpropInput(bpi) as tf.TensorInfo, backend);
    const b = cpuMs(() => ours('Conv2DBackpropInput')(bpi) as tf.TensorInfo, backend);
    rows.push(`| Conv2DBackpropInput | ${name} | ${ms(a)} | ${ms(b)} |`);
    tf.dispose([x, w, dy]);
  }
  const compare = (kernel: keyof typeof up, shape: string, args: Parameters<Fn>[0]) => {
    const a = cpuMs(() => up[kernel](args) as tf.TensorInfo, backend);
    const b = cpuMs(() => ours(kernel)(args) as tf.TensorInfo, backend);
    rows.push(`| ${kernel} | ${shape} | ${ms(a)} | ${ms(b)} |`);
  };
  for (const [name, xs] of [
    ['LeNet-5 pool1', [128, 24, 24, 20]],
    ['LeNet-5 pool2', [128, 8, 8, 50]],
  ] as const) {
    const input = tf.relu(tf.randomNormal(xs as unknown as number[]));
    const output = tf.maxPool(input as tf.Tensor4D, 2, 2, 'valid');
    const dy = tf.randomNormal(output.shape);
    const attrs = { filterSize: 2, strides: 2, pad: 'valid' } as unknown as tf.NamedAttrMap;
    compare('MaxPoolGrad', `${name}, 2x2 stride 2`, { inputs: { dy, input, output }, backend, attrs });
    tf.dispose([input, output, dy]);
  }
  const act = tf.randomNormal([128, 32, 32, 32]);
  const scale = tf.randomNormal([1, 1, 1, 32]);
  compare('Tile', '[1,1,1,32] to [128,32,32,32] (BatchNorm gradient)', {
    inputs: { x: scale },
    backend,
    attrs: { reps: [128, 32, 32, 1] } as unknown as tf.NamedAttrMap,
  });
  for (const kernel of ['Sum', 'Mean'] as const) {
    compare(kernel, '[128,32,32,32] over axes 0,1,2', {
      inputs: { x: act },
      backend,
      attrs: { axis: [0, 1, 2], keepDims: false } as unknown as tf.NamedAttrMap,
    });
  }
  tf.dispose([act, scale]);
  // Rank 6 or less goes straight to upstream (two shape reads): these rows show that costs nothing.
  const x = tf.randomNormal([64, 24, 24, 20]);
  const y = tf.randomNormal([64, 24, 24, 20]);
  const bias20 = tf.randomNormal([20]);
  for (const kernel of ['Add', 'Multiply'] as const) {
    compare(kernel, '[64,24,24,20] and [20]', { inputs: { a: x, b: bias20 }, backend, attrs: {} });
    compare(kernel, '[64,24,24,20] and [64,24,24,20]', { inputs: { a: x, b: y }, backend, attrs: {} });
  }
  tf.dispose([x, y, bias20]);
  console.log('CPU ms per call, best of 3 rounds of 5 calls, single-threaded SIMD wasm');
  console.log(rows.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
