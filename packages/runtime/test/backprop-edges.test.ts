// releaseSavedTensorsDuringBackprop's own promises, by the bytes held when a gradient runs: a
// saved activation is freed once its gradient has run, what an unused branch saved is freed
// before the first gradient, both partial gradients of a tensor are freed once added, and a
// result the function tf.keep()s survives a failing backward pass. (Found unpinned by mutation
// testing: each fails on its mutant.)
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// The gradients of the core ops (tfjs-layers registers them, as a user's model does).
import '@tensorflow/tfjs-layers';
import { releaseSavedTensorsDuringBackprop } from '../src/index.js';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { initWasm } from './kernels-helpers.js';

beforeAll(async () => {
  registerWasmTrainingKernels();
  await initWasm();
  await tf.setBackend('cpu');
});

type CustomGradient = Parameters<typeof tf.customGrad>[0];

describe('releaseSavedTensorsDuringBackprop after an error', () => {
  it('keeps a y that f tf.keep()s when the backward pass throws', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const failing = tf.customGrad(((a: tf.Tensor) => ({
      value: tf.square(a),
      gradFunc: () => {
        throw new Error('gradient failed');
      },
    })) as unknown as CustomGradient);
    const uninstall = releaseSavedTensorsDuringBackprop();
    let kept: tf.Tensor | undefined;
    try {
      expect(() => tf.grad((v: tf.Tensor) => (kept = tf.keep(tf.sum(failing(v)))))(x)).toThrow(
        'gradient failed',
      );
    } finally {
      uninstall();
    }
    expect(kept!.isDisposed).toBe(false);
    expect(kept!.dataSync()[0]).toBe(14);
    tf.dispose([kept!, x]);
  });
});

/**
 * The bytes tfjs holds while the gradient of `probe` (2 x its input) runs, with the release
 * installed, for the gradient of `f` at `x`.
 */
function bytesWhenProbed(
  x: tf.Tensor,
  f: (v: tf.Tensor, probe: (t: tf.Tensor) => tf.Tensor) => tf.Tensor,
): number {
  let bytes = -1;
  const probe = tf.customGrad(((a: tf.Tensor) => ({
    value: tf.mul(a, 2),
    gradFunc: (dy: tf.Tensor) => {
      bytes = tf.memory().numBytes;
      return tf.mul(dy, 2);
    },
  })) as unknown as CustomGradient) as (t: tf.Tensor) => tf.Tensor;
  const uninstall = releaseSavedTensorsDuringBackprop();
  try {
    tf.grad((v: tf.Tensor) => f(v, probe))(x).dispose();
  } finally {
    uninstall();
  }
  if (bytes < 0) throw new Error("bytesWhenProbed: the probe's gradient never ran");
  return bytes;
}

describe('releaseSavedTensorsDuringBackprop: nodes off the x -> y path', () => {
  it('frees what an unused branch of f saved before the first gradient runs', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const bytesDuringBackward = (branch: boolean) =>
      bytesWhenProbed(x, (v, probe) => {
        if (branch) tf.exp(tf.tile(v, [250_000])); // 3 MB saved by exp, never read by y
        return tf.sum(probe(tf.sin(v)));
      });
    expect(bytesDuringBackward(true)).toBe(bytesDuringBackward(false));
    x.dispose();
  });
});

describe('releaseSavedTensorsDuringBackprop: saved activations', () => {
  it('frees the activation a later node saved before the gradients of earlier nodes run', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const bytesAtFirstNode = (op: (t: tf.Tensor) => tf.Tensor) =>
      bytesWhenProbed(x, (v, probe) => tf.sum(op(tf.tile(probe(v), [250_000]))));
    // exp saves its 3 MB output for its gradient; neg saves nothing. Once exp's gradient
    // has run, its saved output is freed, so the first node sees the same bytes either way.
    expect(bytesAtFirstNode(tf.exp)).toBe(bytesAtFirstNode(tf.neg));
    x.dispose();
  });
});

describe.each(['cpu', 'wasm'] as const)(
  'releaseSavedTensorsDuringBackprop: partial gradients (%s)',
  (backend) => {
    beforeAll(async () => {
      await tf.setBackend(backend);
    });

    afterAll(async () => {
      await tf.setBackend('cpu');
    });

    it('frees both partial gradients of a tensor once it has added them, before earlier gradients run', () => {
      // The probe's output (3 floats) plus a constant is b (20,000 x 3 floats, S bytes), read by
      // `readers` tf.sum nodes, each of which hands back a partial gradient of b's size; the walk
      // adds each into b's gradient, which the add's gradient reduces to 3 floats. When the probe's
      // gradient runs, past all that, nothing of b's size is held but the constant (made before,
      // in `before`), however many readers added to b's gradient. An operand of an addition (the
      // running sum or the new partial) kept after it would be S bytes more.
      const rows = 20_000;
      const x = tf.tensor1d([1, 2, 3]);
      const base = tf.zeros([rows, 3]);
      const bytesAtProbe = (readers: number) =>
        bytesWhenProbed(x, (v, probe) => {
          const b = tf.add(probe(v), base);
          return tf.addN(Array.from({ length: readers }, (_, i) => tf.mul(tf.sum(b), i + 1)));
        });
      try {
        const before = tf.memory().numBytes;
        const one = bytesAtProbe(1);
        const three = bytesAtProbe(3);
        expect(three).toBe(one);
        expect(three - before).toBeLessThan(rows * 3 * 4);
        expect(tf.memory().numBytes).toBe(before);
      } finally {
        tf.dispose([x, base]);
      }
    });
  },
);
