// An independent float16 reference for the tests, sharing no code with src/export.ts: the value
// of every half-precision bit pattern comes from tfjs's own float16 reader (tf.io.decodeWeights
// with a float16 quantization, the path tfl.loadLayersModel takes for a 'tfjs' export written
// with float16), and rounding is a search for the nearest of those values, ties to the even
// pattern, rather than bit arithmetic.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

let table: Float32Array | undefined;

/** `halfValues()[h]`: the value tfjs decodes the half-precision bit pattern `h` to, for all 65536 patterns. */
export function halfValues(): Float32Array {
  if (!table) {
    const bits = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const decoded = tf.io.decodeWeights(bits.buffer, [
      { name: 'h', shape: [65536], dtype: 'float32', quantization: { dtype: 'float16' } },
    ]);
    table = Float32Array.from(decoded.h.dataSync() as Float32Array);
    tf.dispose(decoded.h);
  }
  return table;
}

/**
 * The half-precision bit pattern nearest to `v` (a float32 value), ties to the even pattern.
 * The patterns 0x0000..0x7bff decode to increasing values (0 to 65504); past 65504 the next
 * value up is 65536, which stands for Infinity (0x7c00), so anything from 65520 up overflows.
 * The sign bit follows `v`'s sign, -0 included. NaN gives the quiet NaN 0x7e00.
 */
export function halfBits(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const values = halfValues();
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65536) return sign | 0x7c00;
  // values[lo] <= a < value of hi
  let lo = 0;
  let hi = 0x7c00;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= a) lo = mid;
    else hi = mid;
  }
  const below = a - values[lo];
  const above = (hi === 0x7c00 ? 65536 : values[hi]) - a;
  // Exact: a float32 and a neighbouring half differ by few enough bits for a float64.
  const k = below < above ? lo : above < below ? hi : lo % 2 === 0 ? lo : hi;
  return sign | k;
}

/** `values` rounded to float16 (as float32 values) by {@link halfBits}. */
export function roundToHalf(values: ArrayLike<number>): Float32Array {
  const decoded = halfValues();
  return Float32Array.from(values, (v) => decoded[halfBits(v)]);
}

/**
 * A copy of `model` loaded by plain tfjs from memory (its topology and `transform` of each of
 * its weights): the reference an exported model is compared with. The model must be plain
 * (no decomposed layers).
 */
export async function plainCopy(
  model: tfl.LayersModel,
  transform: (values: Float32Array) => Float32Array,
): Promise<tfl.LayersModel> {
  const tensors = model.getWeights();
  const weightSpecs = model.weights.map((w, i) => ({
    name: w.originalName,
    shape: tensors[i].shape,
    dtype: 'float32' as const,
  }));
  const parts = tensors.map((t) => transform(t.dataSync() as Float32Array));
  const data = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p, offset);
    offset += p.length;
  }
  return tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: model.toJSON(null, false) as tf.io.ModelArtifacts['modelTopology'],
      weightSpecs,
      weightData: data.buffer,
    }),
  );
}
