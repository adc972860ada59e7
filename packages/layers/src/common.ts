import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** Plain Dense arguments, as `tf.layers.dense` accepts them. */
export type DenseLayerArgs = Parameters<typeof tfl.layers.dense>[0];
/** Plain Conv2D arguments, as `tf.layers.conv2d` accepts them. */
export type ConvLayerArgs = Parameters<typeof tfl.layers.conv2d>[0];
/** What a `kernelInitializer` may be: an identifier such as `'glorotNormal'`, a serialised config, or an instance. */
export type InitializerSpec = NonNullable<DenseLayerArgs['kernelInitializer']>;

/** Groups of a Dense layer: one per output neuron (a kernel column) or one per input feature (a kernel row). */
export type DenseGranularity = 'output' | 'input';
/** Groups of a Conv2D layer: one per 2-D kernel `[kh, kw]` (thesis), or one per output filter `[kh, kw, cin]`. */
export type Conv2DGranularity = 'kernel' | 'filter';
/** Any granularity. */
export type Granularity = DenseGranularity | Conv2DGranularity;

/** Default epsilon: small enough to be invisible next to a unit-norm direction, large enough that `epsilon^2` is a normal float32. */
export const DEFAULT_EPSILON = 1e-6;

/** The minimal part of tfjs's Activation we use. */
export interface ActivationFn {
  apply(x: tf.Tensor): tf.Tensor;
  getClassName(): string;
}

/** tfjs-layers' Initializer, seen through the public `initializers` namespace. */
export type Initializer = ReturnType<typeof tfl.initializers.ones>;

/**
 * tfjs-layers keeps its argument parsers (`getActivation`, `getInitializer`,
 * ...) private and ships only a bundle, so deep imports would load a second
 * copy with its own class registry. A plain layer built from the same
 * arguments (never built, so it owns no weights) parses them for us, exactly
 * the way `tf.layers.dense` / `tf.layers.conv2d` would, and serialises them
 * the same way too.
 */
export function parseDenseArgs(args: DenseLayerArgs): tfl.layers.Layer & Record<string, any> {
  return tfl.layers.dense({ ...args, name: specName(args.name) }) as any;
}

/** See {@link parseDenseArgs}. */
export function parseConvArgs(args: ConvLayerArgs): tfl.layers.Layer & Record<string, any> {
  return tfl.layers.conv2d({ ...args, name: specName(args.name) }) as any;
}

// A fixed name keeps the parser layer from consuming a uid, so automatic
// names of the user's own layers ('dense_Dense3') stay what they would be.
function specName(name?: string): string {
  return `${name ?? 'decomposed'}__spec`;
}

/** Resolves an initializer identifier / config / instance to an instance and its serialised form. */
export function resolveInitializer(spec: InitializerSpec): { initializer: Initializer; config: unknown } {
  const parser = tfl.layers.dense({ units: 1, kernelInitializer: spec, name: 'initializer__spec' }) as any;
  return { initializer: parser.kernelInitializer, config: parser.getConfig().kernelInitializer };
}

const BASE_KEYS = ['name', 'trainable', 'batchInputShape', 'dtype'];

/** The parser layer's config without the keys that belong to the real layer's base config. */
export function specConfig(spec: tfl.layers.Layer): tf.serialization.ConfigDict {
  const config = { ...spec.getConfig() };
  for (const k of BASE_KEYS) delete config[k];
  return config;
}

/** Activations tfjs fuses into matMul / conv2d (tfjs-layers' own list). */
export function fusedActivation(activation: ActivationFn): 'relu' | 'linear' | 'elu' | null {
  const name = activation.getClassName();
  return name === 'relu' || name === 'linear' || name === 'elu' ? name : null;
}

/**
 * `direction * magnitude / sqrt(sum(direction^2 over normAxes) + epsilon^2)`.
 * One reduction, one rsqrt on the small group tensor, one broadcast multiply
 * on the kernel: the cheapest form, and its autodiff gradient is finite at a
 * zero direction because `epsilon^2 > 0` keeps rsqrt away from its pole.
 */
export function computeEffectiveKernel(
  direction: tf.Tensor,
  magnitude: tf.Tensor,
  normAxes: number[],
  epsilon: number,
): tf.Tensor {
  return tf.tidy(() => {
    const sumSq = tf.sum(tf.square(direction), normAxes, true);
    const scale = tf.mul(tf.reshape(magnitude, sumSq.shape), tf.rsqrt(tf.add(sumSq, epsilon * epsilon)));
    return tf.mul(direction, scale);
  });
}

/** Per-group L2 norm of `kernel` over `normAxes`, shaped like the magnitude (`magnitudeShape`). */
export function groupNorm(kernel: tf.Tensor, normAxes: number[], magnitudeShape: number[]): tf.Tensor {
  return tf.tidy(() => tf.reshape(tf.sqrt(tf.sum(tf.square(kernel), normAxes)), magnitudeShape));
}

/** Throws a tfjs-style error unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(what: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new Error(
      `${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

/** Single tensor out of a tfjs `call()` input. */
export function exactlyOne(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  if (Array.isArray(inputs)) {
    if (inputs.length !== 1) throw new Error(`expected exactly one input tensor, got ${inputs.length}`);
    return inputs[0];
  }
  return inputs;
}

/** Single shape out of a tfjs shape argument. */
export function exactlyOneShape(shape: tfl.Shape | tfl.Shape[]): tfl.Shape {
  if (Array.isArray(shape) && Array.isArray(shape[0])) {
    if (shape.length !== 1) throw new Error(`expected exactly one input shape, got ${shape.length}`);
    return shape[0] as tfl.Shape;
  }
  return shape as tfl.Shape;
}
