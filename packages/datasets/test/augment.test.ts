// batches() augmentation, counted over 600 copies of one image: the random crop shifts by every
// offset from -padding to +padding in both axes about equally often, and the flip mirrors about half.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { batches, mulberry32, permutation, type Split } from '../src/index';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const H = 3;
const W = 3;
const N = 600;
// N copies of one 3x3 image with distinct pixels 1..9.
const img = Uint8Array.from({ length: H * W }, (_, i) => i + 1);
const many: Split = {
  images: Uint8Array.from({ length: N * H * W }, (_, i) => img[i % (H * W)]),
  labels: new Uint8Array(N),
  count: N,
  shape: [H, W, 1],
};

async function outcomes(augment: { padding: number; flip: boolean }): Promise<string[]> {
  const it = batches(many, { batchSize: N, seed: 7, augment });
  const { value } = await it.next();
  const px = Array.from(value.xs.dataSync()).map((v) => Math.round((v as number) * 255));
  tf.dispose([value.xs, value.ys]);
  const p = augment.padding;
  const out: string[] = [];
  for (let n = 0; n < N; n++) {
    const found: string[] = [];
    for (const mirror of [false, true])
      for (let dy = -p; dy <= p; dy++)
        for (let dx = -p; dx <= p; dx++) {
          let ok = true;
          for (let y = 0; y < H && ok; y++)
            for (let x = 0; x < W && ok; x++) {
              const sy = y + dy;
              const sx = (mirror ? W - 1 - x : x) + dx;
              const want = sy < 0 || sy >= H || sx < 0 || sx >= W ? 0 : img[sy * W + sx];
              ok = px[n * H * W + y * W + x] === want;
            }
          if (ok) found.push(`${mirror}:${dy}:${dx}`);
        }
    expect(found.length).toBeGreaterThan(0);
    out.push(found[0]);
  }
  return out;
}

test('the random crop shifts by every offset from -padding to +padding, in both axes, about equally', async () => {
  const got = await outcomes({ padding: 1, flip: false });
  for (const axis of [1, 2]) {
    const counts = new Map<number, number>();
    for (const o of got) {
      const d = Number(o.split(':')[axis]);
      counts.set(d, (counts.get(d) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([-1, 0, 1]);
    // Each of the 3 offsets about N / 3 times (200 +- 60).
    for (const c of counts.values()) expect(Math.abs(c - N / 3)).toBeLessThan(60);
  }
});

test('flip mirrors about half of the images', async () => {
  const got = await outcomes({ padding: 0, flip: true });
  const mirrored = got.filter((o) => o.startsWith('true')).length;
  // 300 +- 60 of 600 (the binomial sd is about 12).
  expect(Math.abs(mirrored - N / 2)).toBeLessThan(60);
});

// The augmentation as batches() made it before it worked row by row (one image's bytes copied
// through the crop and flip into a scratch buffer, pixel by pixel, then mapped to floats): the
// images it gives must stay these, bit for bit, so that a seed's runs repeat across versions.
function referenceBatch(
  split: Split,
  o: {
    batchSize: number;
    seed: number;
    padding: number;
    flip: boolean;
    table: (v: number, k: number) => number;
  },
): Float32Array[] {
  const rand = mulberry32(o.seed);
  const order = permutation(split.count, rand);
  const [h, w, c] = split.shape;
  const per = h * w * c;
  const tables = Array.from({ length: c }, (_, k) =>
    Float32Array.from({ length: 256 }, (_, v) => o.table(v, k)),
  );
  const out: Float32Array[] = [];
  for (let first = 0; first < split.count; first += o.batchSize) {
    const idx = order.subarray(first, Math.min(first + o.batchSize, split.count));
    const xs = new Float32Array(idx.length * per);
    const scratch = new Uint8Array(per);
    idx.forEach((index, i) => {
      const dy = o.padding > 0 ? Math.floor(rand() * (2 * o.padding + 1)) - o.padding : 0;
      const dx = o.padding > 0 ? Math.floor(rand() * (2 * o.padding + 1)) - o.padding : 0;
      const mirror = o.flip && rand() < 0.5;
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const sy = y + dy;
          const sx = (mirror ? w - 1 - x : x) + dx;
          for (let k = 0; k < c; k++)
            scratch[(y * w + x) * c + k] =
              sy < 0 || sy >= h || sx < 0 || sx >= w ? 0 : split.images[index * per + (sy * w + sx) * c + k];
        }
      for (let j = 0; j < per; j++) xs[i * per + j] = tables[j % c][scratch[j]];
    });
    out.push(xs);
  }
  return out;
}

test.each([
  { shape: [5, 4, 1], padding: 1, flip: false, standardize: false },
  { shape: [5, 4, 1], padding: 2, flip: true, standardize: true },
  { shape: [3, 6, 3], padding: 1, flip: true, standardize: true },
  { shape: [4, 3, 3], padding: 4, flip: true, standardize: false },
  { shape: [2, 2, 2], padding: 3, flip: false, standardize: true },
  { shape: [6, 5, 1], padding: 0, flip: true, standardize: false },
] as const)(
  'augmented batches are bit for bit those of the pixel-by-pixel reference: %j',
  async ({ shape, padding, flip, standardize }) => {
    const [h, w, c] = shape;
    const count = 37;
    let s = 12345;
    const images = Uint8Array.from(
      { length: count * h * w * c },
      () => (s = (s * 1103515245 + 12345) >>> 0) >>> 24,
    );
    const split: Split = { images, labels: new Uint8Array(count), count, shape: [h, w, c] };
    const stats = {
      mean: Array.from({ length: c }, (_, k) => 0.3 + 0.1 * k),
      std: Array.from({ length: c }, (_, k) => 0.2 + 0.05 * k),
    };
    const table = standardize
      ? (v: number, k: number) => (v / 255 - stats.mean[k]) / stats.std[k]
      : (v: number) => v / 255;
    const want = referenceBatch(split, { batchSize: 8, seed: 99, padding, flip, table });
    const got: Float32Array[] = [];
    const it = batches(split, {
      batchSize: 8,
      shuffle: true,
      seed: 99,
      augment: { padding, flip },
      ...(standardize ? { normalize: 'standardize' as const, stats } : {}),
    });
    for await (const b of it) {
      got.push(b.xs.dataSync() as Float32Array);
      tf.dispose([b.xs, b.ys]);
    }
    expect(got.length).toBe(want.length);
    got.forEach((g, i) =>
      expect(Buffer.from(g.buffer, g.byteOffset, g.byteLength)).toEqual(Buffer.from(want[i].buffer)),
    );
  },
);
