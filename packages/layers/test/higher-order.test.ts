// Gradients of gradients (a gradient penalty, double backprop): a decomposed layer must give the
// second derivatives autodiff gives for its formula, as a plain Dense / Conv2D does for its kernel.
import * as tf from '@tensorflow/tfjs-core';
import {
  type DecomposedConv2D,
  type DecomposedConv2DTranspose,
  type DecomposedDense,
  type DecomposedDepthwiseConv2D,
  decomposedConv2d,
  decomposedConv2dTranspose,
  decomposedDense,
  decomposedDepthwiseConv2d,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { randn, scaledError, useCpu, disposeWeights } from './helpers.js';

beforeAll(useCpu);

type Decomposed = DecomposedDense | DecomposedConv2D | DecomposedConv2DTranspose | DecomposedDepthwiseConv2D;

/** The documented formula with tf ops, so autodiff differentiates it to any order. */
function formulaKernel(layer: Decomposed): tf.Tensor {
  const v = layer.direction!.read();
  const g = layer.magnitude!.read();
  const sumSq = tf.sum(tf.square(v), layer.normAxes, true);
  return tf.mul(v, tf.mul(tf.reshape(g, sumSq.shape), tf.rsqrt(tf.add(sumSq, layer.epsilon ** 2))));
}

const ACTIVATIONS: Record<string, (y: tf.Tensor) => tf.Tensor> = {
  linear: (y) => y,
  relu: (y) => tf.relu(y),
  tanh: (y) => tf.tanh(y),
};

/**
 * The gradients, with respect to the layer's weights, of a gradient penalty: the squared norm of
 * the gradient of `sum(w * f(x))` with respect to `x` (`of: 'input'`, as WGAN-GP's) or to the
 * weights (`of: 'weights'`, a Hessian-vector product). A weight the penalty does not reach gets 0.
 */
function penaltyGrads(
  f: (x: tf.Tensor) => tf.Tensor,
  x: tf.Tensor,
  w: tf.Tensor,
  vars: tf.Variable[],
  of: 'input' | 'weights',
) {
  const { value, grads } = tf.variableGrads(() => {
    const inner = () => tf.sum(tf.mul(w, f(x))) as tf.Scalar;
    const gs =
      of === 'input'
        ? [tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(w, f(xx))))(x)]
        : Object.values(tf.variableGrads(inner, vars).grads);
    return tf.addN(gs.map((g) => tf.sum(tf.square(g)))) as tf.Scalar;
  }, vars);
  return { value, grads: vars.map((v) => grads[v.name] ?? tf.zerosLike(v)) };
}

function expectSameSecondOrder(
  layer: Decomposed,
  reference: (x: tf.Tensor) => tf.Tensor,
  inputShape: number[],
  seed: number,
  kinds: readonly ('input' | 'weights')[] = ['input', 'weights'],
): void {
  const x = randn(inputShape, seed);
  const y = tf.tidy(() => layer.apply(x) as tf.Tensor);
  const w = randn(y.shape, seed + 1);
  // Magnitudes away from the norms, so that a gradient through the magnitude shows.
  tf.tidy(() => {
    layer.magnitude!.write(tf.mul(randn(layer.magnitude!.shape as number[], seed + 2), 2));
  });
  const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  for (const of of kinds) {
    const ours = penaltyGrads((xx) => layer.apply(xx) as tf.Tensor, x, w, vars, of);
    const expected = penaltyGrads(reference, x, w, vars, of);
    const errors = [
      { of, weight: 'penalty', error: scaledError(ours.value, expected.value) },
      ...vars.map((v, i) => ({ of, weight: v.name, error: scaledError(ours.grads[i], expected.grads[i]) })),
    ];
    expect(errors.filter((e) => !(e.error < 1e-4))).toEqual([]);
    tf.dispose([ours.value, expected.value, ...ours.grads, ...expected.grads]);
  }
  tf.dispose([x, y, w]);
}

describe('gradients of gradients match autodiff of the formula', () => {
  const denseCases = (['output', 'input'] as const).flatMap((granularity) =>
    Object.keys(ACTIVATIONS).flatMap((activation) =>
      [true, false].flatMap((useBias) =>
        [
          [1, 5],
          [3, 5],
          [2, 3, 5],
        ].map((inputShape) => [granularity, activation, useBias, inputShape] as const),
      ),
    ),
  );

  test.each(denseCases)(
    'DecomposedDense %s, activation %s, useBias %s, input %j',
    (granularity, activation, useBias, inputShape) => {
      const layer = decomposedDense({ units: 4, granularity, activation: activation as never, useBias });
      const reference = (x: tf.Tensor) => {
        const x2 = tf.reshape(x, [-1, 5]) as tf.Tensor2D;
        let y: tf.Tensor = tf.matMul(x2, formulaKernel(layer) as tf.Tensor2D);
        if (useBias) y = tf.add(y, layer.bias!.read());
        return tf.reshape(ACTIVATIONS[activation](y), [...inputShape.slice(0, -1), 4]);
      };
      expectSameSecondOrder(layer, reference, inputShape, 11);
      disposeWeights(layer);
    },
  );

  const convCases = (['kernel', 'filter'] as const).flatMap((granularity) =>
    ['linear', 'relu', 'tanh'].flatMap((activation) =>
      (['same', 'valid'] as const).flatMap((padding) =>
        [1, 2].flatMap((strides) =>
          [1, 2].map((batch) => [granularity, activation, padding, strides, batch] as const),
        ),
      ),
    ),
  );

  test.each(convCases)(
    'DecomposedConv2D %s, activation %s, padding %s, strides %i, batch %i',
    (granularity, activation, padding, strides, batch) => {
      const layer = decomposedConv2d({
        filters: 3,
        kernelSize: [3, 2],
        granularity,
        activation: activation as never,
        padding,
        strides,
      });
      const reference = (x: tf.Tensor) =>
        ACTIVATIONS[activation](
          tf.add(
            tf.conv2d(x as tf.Tensor4D, formulaKernel(layer) as tf.Tensor4D, strides, padding),
            layer.bias!.read(),
          ),
        );
      // tfjs-core has no gradient for Conv2DBackpropFilter, which a relu conv's Hessian-vector
      // product needs: it refuses that for tf.conv2d itself, so only the input's penalty is compared.
      const kinds = activation === 'relu' ? (['input'] as const) : (['input', 'weights'] as const);
      expectSameSecondOrder(layer, reference, [batch, 6, 5, 2], 21, kinds);
      if (activation === 'relu') {
        const x = randn([batch, 6, 5, 2], 22);
        const w = tf.tidy(() => tf.onesLike(layer.apply(x) as tf.Tensor));
        const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
        const refusal = /gradient function not found for Conv2DBackpropFilter/;
        expect(() => penaltyGrads(reference, x, w, vars, 'weights')).toThrow(refusal);
        expect(() => penaltyGrads((xx) => layer.apply(xx) as tf.Tensor, x, w, vars, 'weights')).toThrow(
          refusal,
        );
        tf.dispose([x, w]);
      }
      disposeWeights(layer);
    },
  );

  // The 'filter' groups of a transposed kernel [kh, kw, cout, cin] reduce axes 0, 1 and 3, on
  // both sides of the group axis: the plain-ops path views the direction as [kh * kw, cout, cin].
  test.each(convCases.filter(([, , , , batch]) => batch === 2))(
    'DecomposedConv2DTranspose %s, activation %s, padding %s, strides %i, batch %i',
    (granularity, activation, padding, strides, batch) => {
      const layer = decomposedConv2dTranspose({
        filters: 3,
        kernelSize: [3, 2],
        granularity,
        activation: activation as never,
        padding,
        strides,
      });
      const input = [batch, 3, 4, 2];
      const out = layer.computeOutputShape(input) as [number, number, number, number];
      const reference = (x: tf.Tensor) =>
        ACTIVATIONS[activation](
          tf.add(
            tf.conv2dTranspose(x as tf.Tensor4D, formulaKernel(layer) as tf.Tensor4D, out, strides, padding),
            layer.bias!.read(),
          ),
        );
      // As for DecomposedConv2D: tfjs-core has no gradient for Conv2DBackpropFilter, which a relu
      // layer's Hessian-vector product needs (refused for tf.conv2dTranspose itself too).
      const kinds = activation === 'relu' ? (['input'] as const) : (['input', 'weights'] as const);
      expectSameSecondOrder(layer, reference, input, 23, kinds);
      disposeWeights(layer);
    },
  );

  // tfjs-core has no gradient for DepthwiseConv2dNativeBackpropInput nor BackpropFilter: it refuses
  // a gradient penalty on the input through tf.depthwiseConv2d itself, and a DecomposedDepthwiseConv2D refuses it the same way (the plain-ops path of its 'filter' view, axes 0, 1 and 3 of
  // [kh, kw, cin, depthMultiplier], is the transposed kernel's, compared above).
  test.each(convCases.filter(([, , padding, , batch]) => batch === 2 && padding === 'valid'))(
    'DecomposedDepthwiseConv2D %s, activation %s, padding %s, strides %i, batch %i: as tf.depthwiseConv2d, or refused as it is',
    (granularity, activation, padding, strides, batch) => {
      const layer = decomposedDepthwiseConv2d({
        kernelSize: [3, 2],
        depthMultiplier: 2,
        granularity,
        activation: activation as never,
        padding,
        strides,
      });
      const reference = (x: tf.Tensor) =>
        ACTIVATIONS[activation](
          tf.add(
            tf.depthwiseConv2d(x as tf.Tensor4D, formulaKernel(layer) as tf.Tensor4D, strides, padding),
            layer.bias!.read(),
          ),
        );
      const x = randn([batch, 6, 5, 2], 24);
      const w = tf.tidy(() => tf.onesLike(layer.apply(x) as tf.Tensor));
      const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
      const refusal = /gradient function not found for DepthwiseConv2dNativeBackprop(Input|Filter)/;
      expect(() => penaltyGrads(reference, x, w, vars, 'input')).toThrow(refusal);
      expect(() => penaltyGrads((xx) => layer.apply(xx) as tf.Tensor, x, w, vars, 'input')).toThrow(refusal);
      // The weights' penalty (a Hessian-vector product) goes through where tfjs differentiates
      // tf.depthwiseConv2d's weight gradient, and is then compared.
      let weights = true;
      try {
        const { value, grads } = penaltyGrads(reference, x, w, vars, 'weights');
        tf.dispose([value, ...grads]);
      } catch (e) {
        expect((e as Error).message).toMatch(refusal);
        expect(() => penaltyGrads((xx) => layer.apply(xx) as tf.Tensor, x, w, vars, 'weights')).toThrow(
          refusal,
        );
        weights = false;
      }
      tf.dispose([x, w]);
      if (weights) expectSameSecondOrder(layer, reference, [batch, 6, 5, 2], 25, ['weights']);
      disposeWeights(layer);
    },
  );

  it('a gradient penalty step keeps tf.memory().numTensors flat', async () => {
    const layer = decomposedDense({ units: 3, activation: 'relu' });
    const x = randn([4, 5], 31);
    const w = randn([4, 3], 32);
    layer.apply(x);
    const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
    const step = () => {
      for (const of of ['input', 'weights'] as const) {
        const { value, grads } = penaltyGrads((xx) => layer.apply(xx) as tf.Tensor, x, w, vars, of);
        tf.dispose([value, ...grads]);
      }
    };
    step();
    await expectNoLeak(() => {
      for (let i = 0; i < 3; i++) step();
    });
    tf.dispose([x, w]);
    disposeWeights(layer);
  });
});
