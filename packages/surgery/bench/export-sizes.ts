// Bytes on disk of exportModel's 'tfjs' and 'sparse' formats, in float32 and
// float16, for pruned models that keep no, some or many zero groups (2-D
// kernels of a Conv2D, single weights of a Dense). The sizes depend only on
// the shapes and on which weights are zero, not on the machine or its load.
//
//   cd packages/surgery && npm run bench:sizes
//
// 'sparse' writes the same values as 'tfjs' minus the zero groups of each
// weight it stores 'bitmask' (one bit per group of its last two axes), and a
// sparse.json that is larger than tfjs's weight manifest (offsets, encodings,
// value counts). So it is smaller only when enough zero groups are left after
// pruning: none are left when every zero came in whole neurons and filters,
// which prune removes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { exportModel, prune, type PruneOptions } from '../src/index.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Sets to 0 the kernel weights of layer `name` at [..., i, o] where `dead(i, o)`. */
function zero(model: tfl.LayersModel, name: string, dead: (i: number, o: number) => boolean): void {
  const layer = model.getLayer(name);
  const [kernel, ...rest] = layer.getWeights();
  const [cin, cout] = kernel.shape.slice(-2);
  const v = kernel.dataSync().slice();
  v.forEach((_, p) => dead(Math.floor(p / cout) % cin, p % cout) && (v[p] = 0));
  const t = tf.tensor(v, kernel.shape);
  layer.setWeights([t, ...rest]);
  t.dispose();
}

/** The README's first example, zeroed as it zeroes it: every zero lies in a whole filter or neuron. */
function readmeModel(): tfl.LayersModel {
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [12, 12, 1],
        filters: 8,
        kernelSize: 3,
        activation: 'relu',
        name: 'conv1',
      }),
      tfl.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu', name: 'conv2' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 32, activation: 'relu', name: 'fc1' }),
      tfl.layers.dense({ units: 10, name: 'fc2' }),
    ],
  });
  zero(model, 'conv1', (_i, o) => o < 4);
  zero(model, 'conv2', (i, o) => o < 8 || i === 4);
  zero(model, 'fc1', (_i, o) => o % 2 === 1);
  return model;
}

/**
 * A small CIFAR-shaped conv net trained with kernel granularity, as it comes out: a fraction
 * `dead` of the 2-D kernels of conv2 and conv3 zero at random (a filter left with none is removed).
 */
function convNet(dead: number): tfl.LayersModel {
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [32, 32, 3],
        filters: 32,
        kernelSize: 3,
        activation: 'relu',
        name: 'conv1',
        kernelInitializer: init(1),
      }),
      tfl.layers.conv2d({
        filters: 64,
        kernelSize: 3,
        activation: 'relu',
        name: 'conv2',
        kernelInitializer: init(2),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({
        filters: 128,
        kernelSize: 3,
        activation: 'relu',
        name: 'conv3',
        kernelInitializer: init(3),
      }),
      tfl.layers.globalAveragePooling2d({}),
      tfl.layers.dense({ units: 10, name: 'out', kernelInitializer: init(4) }),
    ],
  });
  const r = rng(7);
  for (const [name, cin, cout] of [
    ['conv2', 32, 64],
    ['conv3', 64, 128],
  ] as const) {
    const zeroKernel = Array.from({ length: cin * cout }, () => r() < dead);
    zero(model, name, (i, o) => zeroKernel[i * cout + o]);
  }
  return model;
}

/** LeNet-300-100 with random weights, pruned by magnitude with `threshold` (a Dense group is one weight). */
function lenet300100(): tfl.LayersModel {
  const init = (seed: number) => tfl.initializers.randomUniform({ minval: -1, maxval: 1, seed });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [784],
        units: 300,
        activation: 'relu',
        name: 'fc1',
        kernelInitializer: init(1),
      }),
      tfl.layers.dense({ units: 100, activation: 'relu', name: 'fc2', kernelInitializer: init(2) }),
      tfl.layers.dense({ units: 10, name: 'fc3', kernelInitializer: init(3) }),
    ],
  });
}

interface Case {
  name: string;
  build: () => tfl.LayersModel;
  options?: PruneOptions;
}

const CASES: Case[] = [
  { name: 'README example (zeros in whole filters/neurons)', build: readmeModel },
  ...[0, 0.02, 0.25, 0.5, 0.75, 0.9].map((d) => ({
    name: `conv net, ${100 * d}% of conv2/conv3 2-D kernels zero`,
    build: () => convNet(d),
  })),
  {
    name: 'LeNet-300-100, magnitude-pruned (threshold 0.5)',
    build: lenet300100,
    options: { threshold: 0.5 },
  },
];

const kb = (n: number) => n.toLocaleString('en-US');

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-export-sizes-'));
  console.log(`exportModel bytes on disk (model.json + weight files); node ${process.version}`);
  console.log(
    '| model | params after prune | zero kernel weights | tfjs float32 | sparse float32 | tfjs float16 | sparse float16 |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  try {
    for (const c of CASES) {
      const model = c.build();
      const { model: pruned } = prune(model, c.options);
      model.dispose();
      const sizes: string[] = [];
      for (const float16 of [false, true]) {
        const bytes: number[] = [];
        for (const format of ['tfjs', 'sparse'] as const) {
          const dir = path.join(root, `${format}-${float16}`);
          bytes.push((await exportModel(pruned, dir, { format, float16 })).bytes);
          fs.rmSync(dir, { recursive: true, force: true });
        }
        const [t, s] = bytes;
        sizes.push(kb(t), `${kb(s)} (${s <= t ? '' : '+'}${(100 * (s / t - 1)).toFixed(1)}%)`);
      }
      // Kernel weights (rank >= 2) that are 0: what a 'bitmask' weight can leave out.
      let kernel = 0;
      let zeros = 0;
      for (const w of pruned.getWeights()) {
        if (w.rank < 2) continue;
        const v = w.dataSync();
        kernel += v.length;
        for (let i = 0; i < v.length; i++) if (v[i] === 0) zeros++;
      }
      console.log(
        `| ${c.name} | ${kb(pruned.countParams())} | ${((100 * zeros) / kernel).toFixed(1)}% | ${sizes.join(' | ')} |`,
      );
      pruned.dispose();
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
