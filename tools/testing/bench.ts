// Pieces the packages' benchmarks share (not published, not tests).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** A numeric command-line option `name VALUE` of this process, else `dflt`. */
export function option(name: string, dflt: number, args = process.argv.slice(2)): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

const VGG16 = [
  64,
  64,
  'M',
  128,
  128,
  'M',
  256,
  256,
  256,
  'M',
  512,
  512,
  512,
  'M',
  512,
  512,
  512,
  'M',
] as const;

/**
 * The CIFAR VGG-16 with batch normalization (13 conv 3x3 + BN + ReLU, a 512-wide classifier),
 * seeded: conv `n` is `conv{n}` (glorot seed n), `fc1` and `fc2` seeds 20 and 21. Filters and the
 * classifier's width are scaled by `width`; `softmax` ends it with a softmax, else logits.
 */
export function vgg16bn({
  width = 1,
  softmax = false,
}: { width?: number; softmax?: boolean } = {}): tfl.LayersModel {
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  const layers: tfl.layers.Layer[] = [];
  let n = 0;
  for (const c of VGG16) {
    if (c === 'M') {
      layers.push(tfl.layers.maxPooling2d({ poolSize: 2 }));
      continue;
    }
    n++;
    layers.push(
      tfl.layers.conv2d({
        ...(n === 1 ? { inputShape: [32, 32, 3] } : {}),
        filters: Math.max(1, Math.round(c * width)),
        kernelSize: 3,
        padding: 'same',
        name: `conv${n}`,
        kernelInitializer: init(n),
      }),
      tfl.layers.batchNormalization({ name: `bn${n}` }),
      tfl.layers.activation({ activation: 'relu', name: `relu${n}` }),
    );
  }
  layers.push(
    tfl.layers.flatten(),
    tfl.layers.dense({
      units: Math.round(512 * width),
      activation: 'relu',
      name: 'fc1',
      kernelInitializer: init(20),
    }),
    tfl.layers.dense({
      units: 10,
      name: 'fc2',
      kernelInitializer: init(21),
      ...(softmax ? { activation: 'softmax' } : {}),
    }),
  );
  return tfl.sequential({ layers });
}

/**
 * Runs `fn` and returns the peak of `process.memoryUsage().arrayBuffers` above its value at the
 * start (after a GC; run node with --expose-gc), sampled every millisecond and right before each
 * file write and read, where the buffers in use are all alive.
 */
export async function peakExtraArrayBuffers(fn: () => Promise<unknown>): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc == null) throw new Error('run with node --expose-gc');
  // V8 frees the backing stores of collected ArrayBuffers on a background thread, after gc()
  // returns: a base read at once still counts the garbage of the previous case, which is then
  // freed while `fn` allocates, and hides its peak (the load of file-system-memory.ts read 0.00x
  // where it holds 1.00x, its result). Collect and yield until the count stops falling.
  let base = Infinity;
  for (let i = 0; i < 20; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const now = process.memoryUsage().arrayBuffers;
    if (now >= base) break;
    base = now;
  }
  let peak = base;
  const sample = () => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  };
  const timer = setInterval(sample, 1);
  const handle = await fs.promises.open(__filename, 'r');
  const proto = Object.getPrototypeOf(handle) as Record<'writeFile' | 'read', (...a: unknown[]) => unknown>;
  await handle.close();
  const originals = { writeFile: proto.writeFile, read: proto.read };
  for (const k of ['writeFile', 'read'] as const) {
    proto[k] = function (this: unknown, ...a: unknown[]) {
      sample();
      return originals[k].apply(this, a);
    };
  }
  try {
    await fn();
    sample();
  } finally {
    clearInterval(timer);
    Object.assign(proto, originals);
  }
  return peak - base;
}

/** The configuration this process was started with as a child (`--child CONFIG`), or undefined. */
export function childConfig(args = process.argv.slice(2)): string | undefined {
  const i = args.indexOf('--child');
  return i >= 0 ? args[i + 1] : undefined;
}

/**
 * Runs the script `file` once per configuration, each in a process of its own (a fresh wasm
 * heap), with this process's arguments and `--child CONFIG`; returns what each printed last, as JSON.
 */
export function inChildren<C extends string, M>(file: string, configs: readonly C[]): [C, M][] {
  return configs.map((config) => {
    const out = execFileSync(
      process.execPath,
      [...process.execArgv, file, ...process.argv.slice(2), '--child', config],
      { encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    return [config, JSON.parse(out.trim().split('\n').pop()!) as M];
  });
}

/** A CIFAR-shaped training batch of `size`: seeded normal noise, one-hot labels 0..9 in turn. */
export function cifarBatch(size: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  return tf.tidy(() => ({
    x: tf.randomNormal([size, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D,
    y: tf.oneHot(
      tf.tensor1d(
        Array.from({ length: size }, (_, i) => i % 10),
        'int32',
      ),
      10,
    ) as tf.Tensor2D,
  }));
}
