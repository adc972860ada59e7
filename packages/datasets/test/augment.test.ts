// batches() augmentation, counted over 600 copies of one image: the random crop shifts by every
// offset from -padding to +padding in both axes about equally often, and the flip mirrors about half.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { batches, type Split } from '../src/index';

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
