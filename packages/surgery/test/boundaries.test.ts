// Values at the edges of the documented rules: analyze's Dense group kinds (dead outputs vs dead
// inputs), the sparse encoding's tie (bitmask and dense of equal size: dense), float16's largest value.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { analyze, exportModel, loadSparseModel } from '../src/index';

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-probe-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dense(inputs: number, units: number, kernel: number[]): tfl.Sequential {
  const m = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [inputs], units, name: 'd' })] });
  const [, b] = m.layers[0].getWeights();
  m.layers[0].setWeights([tf.tensor2d(kernel, [inputs, units]), b]);
  return m;
}

test('a Dense layer reports its dead outputs as output groups and its dead inputs as input groups', () => {
  // Kernel [4 inputs, 3 units]: unit 2 (column) dead, no input row dead.
  const k = [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0];
  const m = dense(4, 3, k);
  const [l] = analyze(m).layers;
  expect(l.groups).toEqual([
    { kind: 'output', total: 3, dead: 1 },
    { kind: 'input', total: 4, dead: 0 },
  ]);
  m.dispose();
});

test('a kernel whose bitmask form takes exactly as many bytes as its dense form is stored dense', async () => {
  // Dense [4, 4], float16: dense 16 x 2 = 32 bytes; bitmask 2 mask bytes + 15 live x 2 = 32 bytes.
  const k = Array.from({ length: 16 }, (_, i) => (i === 5 ? 0 : 0.5 + i / 16));
  const m = dense(4, 4, k);
  const dir = path.join(tmp, 'tie');
  await exportModel(m, dir, { format: 'sparse', float16: true });
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'sparse.json'), 'utf8'));
  const kernel = manifest.weights.find((w: { name: string }) => w.name.endsWith('kernel'));
  expect(kernel.encoding).toBe('dense');
  expect(kernel.values).toBe(16);
  m.dispose();
});

test('float16 export takes 65504, the largest half-precision value, and stores it exactly', async () => {
  const k = [65504, -65504, 1, 0];
  const m = dense(2, 2, k);
  const dir = path.join(tmp, 'max-half');
  await exportModel(m, dir, { format: 'sparse', float16: true });
  const back = await loadSparseModel(dir);
  expect(Array.from(back.layers[0].getWeights()[0].dataSync())).toEqual(k);
  back.dispose();
  m.dispose();
});
