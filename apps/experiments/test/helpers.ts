// Fixtures for the CLI tests: tiny data sets written under os.tmpdir(), and a
// loader that reads an exported model with nothing but plain tfjs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { loadExperiment, main, type TableRow } from '../src/index';

/** Runs `f` with process.stderr captured; returns its result and what it wrote there. */
export async function withStderr<T>(f: () => T | Promise<T>): Promise<{ value: T; err: string }> {
  const errs: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  (process.stderr as any).write = (s: string | Uint8Array) => {
    errs.push(String(s));
    return true;
  };
  try {
    return { value: await f(), err: errs.join('') };
  } finally {
    (process.stderr as any).write = write;
  }
}

/** Runs the CLI in-process; returns exit code and captured stdout + stderr. */
export async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = [];
  const { value: code, err } = await withStderr(() => main(args, (s) => lines.push(s)));
  return { code, out: lines.join('\n'), err };
}

/** The flags of a tiny run (or sweep) on wasm into `out`: a few seconds a run. */
export const tinyWasm = (out: string): string[] => ['--budget', 'tiny', '--backend', 'wasm', '--out', out];

/** The arguments of a tiny lenet-500-300 run on wasm into `out` (a few seconds), then `extra`. */
export const tinyRunArgs = (out: string, ...extra: string[]): string[] => [
  'reproduce',
  'lenet-500-300',
  ...tinyWasm(out),
  ...extra,
];

/** Runs {@link tinyRunArgs} in-process. */
export const reproduceTiny = (out: string, ...extra: string[]) => cli(tinyRunArgs(out, ...extra));

/**
 * Runs the CLI from its TypeScript sources in a child process (a real
 * signal, or a wasm binary of its own: it is chosen once per process).
 */
export function spawnCli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): ChildProcessByStdio<null, Readable, Readable> {
  const root = join(__dirname, '..', '..', '..');
  return spawn(
    process.execPath,
    [
      '--require',
      join(root, 'scripts', 'ts-register.cjs'),
      join(__dirname, '..', 'src', 'cli-main.ts'),
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
}

/** A deep copy of JSON data. */
export const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));

/** A shipped experiment's parsed config as a deep copy the test may change freely. */
export const experimentCopy = (name: string): any => clone(loadExperiment(name));

/** Writes the experiment `base` (default lenet-500-300) changed by `edit` to DIR/<name>.json; returns the file. */
export function writeVariant(
  dir: string,
  name: string,
  edit: (cfg: any) => void,
  base = 'lenet-500-300',
): string {
  const cfg = experimentCopy(base);
  edit(cfg);
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

function idx(magic: number, dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

/**
 * Writes a small IDX data set (28x28, 10 classes) into `dir`: each class is a
 * bright square at its own place, so a few hundred samples are learnable.
 */
export function writeIdxFixture(dir: string, nTrain: number, nTest: number): void {
  mkdirSync(dir, { recursive: true });
  const r = rng(7);
  const make = (n: number) => {
    const images = new Uint8Array(n * 784);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const c = i % 10;
      labels[i] = c;
      const y0 = 2 + Math.floor(c / 5) * 12;
      const x0 = 2 + (c % 5) * 5;
      for (let y = 0; y < 28; y++)
        for (let x = 0; x < 28; x++) {
          const inside = y >= y0 && y < y0 + 8 && x >= x0 && x < x0 + 4;
          images[i * 784 + y * 28 + x] = inside ? 200 + Math.floor(r() * 55) : Math.floor(r() * 40);
        }
    }
    return { images, labels };
  };
  const tr = make(nTrain);
  const te = make(nTest);
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idx(2051, [nTrain, 28, 28], tr.images));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx(2049, [nTrain], tr.labels));
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx(2051, [nTest, 28, 28], te.images));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx(2049, [nTest], te.labels));
}

/** Writes a CIFAR-10 binary-layout fixture (`cifar-10-batches-bin/`) with `perBatch` records per batch file. */
export function writeCifarFixture(dir: string, perBatch: number): string {
  const d = join(dir, 'cifar-10-batches-bin');
  mkdirSync(d, { recursive: true });
  const r = rng(11);
  const batch = () => {
    const buf = new Uint8Array(perBatch * 3073);
    for (let i = 0; i < perBatch; i++) {
      const c = i % 10;
      buf[i * 3073] = c;
      for (let k = 0; k < 3072; k++)
        buf[i * 3073 + 1 + k] = Math.floor(r() * 64) + (Math.floor(k / 1024) === c % 3 ? 128 : 0);
    }
    return buf;
  };
  for (let i = 1; i <= 5; i++) writeFileSync(join(d, `data_batch_${i}.bin`), batch());
  writeFileSync(join(d, 'test_batch.bin'), batch());
  writeFileSync(
    join(d, 'batches.meta.txt'),
    ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'].join('\n') +
      '\n',
  );
  return dir;
}

/**
 * The input {@link loadInPlainTfjs} predicts on for a model taking `shape`
 * images: two of them, with values spread over [-1, 1) by a fixed formula
 * (the same in the child process, which gets this function's source).
 */
export function probeInput(shape: number[]): { shape: number[]; values: Float32Array } {
  const n = 2 * shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = ((i * 7919) % 2000) / 1000 - 1;
  return { shape: [2, ...shape], values };
}

/**
 * Loads each exported model in a fresh Node process that imports only
 * tfjs-core, tfjs-layers and the cpu backend (no normprune code), predicts on
 * {@link probeInput}, and returns each model's output shape and values.
 */
export function loadInPlainTfjs(dirs: string[]): { shape: number[]; values: number[] }[] {
  const script = `
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfl = require('@tensorflow/tfjs-layers');
const fs = require('fs'); const path = require('path');
const probeInput = ${probeInput.toString()};
(async () => {
  await tf.setBackend('cpu');
  const shapes = [];
  for (const dir of JSON.parse(process.argv[1])) {
    const mj = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const specs = []; const bufs = [];
    for (const g of mj.weightsManifest) { specs.push(...g.weights); for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p))); }
    const all = Buffer.concat(bufs);
    const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
    const model = await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: mj.modelTopology, weightSpecs: specs, weightData }));
    const x = probeInput(model.inputs[0].shape.slice(1));
    const y = model.predict(tf.tensor(x.values, x.shape));
    shapes.push({ shape: y.shape, values: Array.from(y.dataSync()) });
  }
  process.stdout.write(JSON.stringify(shapes));
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;
  const r = spawnSync(process.execPath, ['-e', script, JSON.stringify(dirs)], {
    cwd: join(__dirname, '..'),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`plain tfjs could not load the exported models: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A results-table row: 1,000 parameters, `compressionPct` removed, test error `base` -> `comp` (%), target lenet-500-300's. */
export function resultsRow(
  experiment: string,
  seed: number,
  compressionPct: number,
  base: number,
  comp: number,
): TableRow {
  const model = { testErrorPct: base, validationErrorPct: base, params: 1000, nonzeros: 1000, macs: 1000 };
  return {
    experiment,
    budget: 'full',
    reduced: false,
    seed,
    backend: 'wasm',
    baseline: model,
    compressed: {
      ...model,
      testErrorPct: comp,
      validationErrorPct: comp + 0.1,
      nonzeros: 1000 * (1 - compressionPct / 100),
    },
    compressionPct,
    macsReductionPct: compressionPct,
    errorDeltaPp: Number((comp - base).toFixed(2)),
    target: { minCompressionPct: 85.4, maxErrorDeltaPp: 0.09, met: false },
    trainingSec: 100,
  } as TableRow;
}
