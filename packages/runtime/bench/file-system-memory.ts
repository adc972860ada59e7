// Peak memory of fileSystem(dir).save and .load beyond the weights themselves,
// for a ~60 MB model (15M float32 parameters, the size of a full-width VGG-16
// for CIFAR), as a multiple of the weight bytes. Not a test: the figures
// depend on when V8 collects garbage.
//
//   cd packages/runtime && node --expose-gc --require ../../scripts/ts-register.cjs bench/file-system-memory.ts
//
// Memory is `process.memoryUsage().arrayBuffers` (ArrayBuffers and Buffers
// outside the V8 heap), sampled every millisecond and before every file write
// and read, minus its value after a full GC with the input in place. Each case
// runs `--repeat` times (default 3); the table gives the largest peak.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { fileSystem } from '../src/file-system.js';
import { option, peakExtraArrayBuffers as peakExtra } from '../../../tools/testing/bench.js';

const REPEAT = option('--repeat', 3);

// Dense layers of a wide classifier: 15,010,750 float32 = 60.0 MB.
const LAYERS: [number, number][] = [
  [3000, 4000],
  [4000, 750],
  [750, 10],
];

function specs(): tf.io.WeightsManifestEntry[] {
  return LAYERS.flatMap(([i, o], k) => [
    { name: `dense_${k}/kernel`, shape: [i, o], dtype: 'float32' as const },
    { name: `dense_${k}/bias`, shape: [o], dtype: 'float32' as const },
  ]);
}

/** One buffer per weight, as exportModel hands them over. */
function weightBuffers(): ArrayBuffer[] {
  return specs().map((s, k) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = Math.sin(i * 0.001 + k);
    return v.buffer;
  });
}

function joined(parts: ArrayBuffer[]): ArrayBuffer {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p), at);
    at += p.byteLength;
  }
  return out.buffer;
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-fs-mem-'));
  const bytes = specs().reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
  const base: tf.io.ModelArtifacts = {
    modelTopology: { class_name: 'Sequential', config: { name: 'bench', layers: [] } },
    format: 'layers-model',
    generatedBy: 'bench',
    convertedBy: null,
    weightSpecs: specs(),
  };
  const rows: [string, number][] = [];
  const cases: [string, () => Promise<number>][] = [
    [
      'save, weights as one buffer per weight',
      async () => {
        const weightData = weightBuffers();
        return peakExtra(() => fileSystem(path.join(root, 'list')).save!({ ...base, weightData }));
      },
    ],
    [
      'save, weights as one buffer (LayersModel.save)',
      async () => {
        const weightData = joined(weightBuffers());
        return peakExtra(() => fileSystem(path.join(root, 'one')).save!({ ...base, weightData }));
      },
    ],
    [
      'load (the returned weights included)',
      async () => peakExtra(async () => (await fileSystem(path.join(root, 'list')).load!()).weightData),
    ],
  ];
  for (const [name, run] of cases) {
    let worst = 0;
    for (let r = 0; r < REPEAT; r++) worst = Math.max(worst, await run());
    rows.push([name, worst]);
  }
  fs.rmSync(root, { recursive: true, force: true });

  console.log(`weights: ${(bytes / 2 ** 20).toFixed(1)} MB (${bytes} bytes); node ${process.version}`);
  console.log('| case | peak extra MB | x weight bytes |');
  console.log('| --- | ---: | ---: |');
  for (const [name, extra] of rows) {
    console.log(`| ${name} | ${(extra / 2 ** 20).toFixed(1)} | ${(extra / bytes).toFixed(2)} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
