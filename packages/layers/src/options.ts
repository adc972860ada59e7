// Options objects of the exported functions (of this package, and of prox and
// surgery, which import these): a key a function does not take (a misspelling
// such as `treshold`, `granularty`) is refused, naming it, the keys the function
// takes, and the one it likely misspells; read as no option at all, it would
// silently give the default. No Node here: browser builds use it too.
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  type ConvLayerArgs,
  type DenseLayerArgs,
  type DepthwiseConvLayerArgs,
  type SeparableConvLayerArgs,
  describeValue as describe,
} from './common.js';

/** The edit distance of two strings (insertions, deletions, substitutions, adjacent swaps). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/**
 * A name as {@link closestKey} compares it: lower case, without `_` and `-` (`LeNet_5` and
 * `lenet-5` are one). Shared with the CLI, which matches experiment names the same way. @internal
 */
export function normKey(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, '');
}

/**
 * The key `word` most likely misspells: the nearest of `keys` by edit distance (case, `_` and
 * `-` ignored), if near enough to be a typo (at most 2 edits, and fewer than half the word, or
 * one edit in a word of one or two letters; `fp16` is too far from `float16`), else undefined.
 * Shared by normprune's packages (their unknown-option errors) and its CLI. @internal
 */
export function closestKey(word: string, keys: readonly string[]): string | undefined {
  const w = normKey(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of keys) {
    const d = editDistance(w, normKey(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= 2 && bestD < Math.max(2, w.length / 2) ? best : undefined;
}

/**
 * What is wrong with `options`, the options argument of a function taking the keys `keys`
 * (`example` shows an options object in the message), or undefined when nothing is: it must be
 * undefined or an object that is not an array, each of its own enumerable string keys one of
 * `keys` (inherited and symbol keys are not looked at; nor are the entries of a Map), and no
 * value null (a key left out, or undefined, gives the default). Shared by normprune's packages,
 * whose functions refuse unknown option keys with it. @internal
 */
export function optionsProblem(
  options: unknown,
  keys: readonly string[],
  example: string,
): string | undefined {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    return `options must be an object such as ${example}, got ${describe(options)}`;
  const unknown = Object.keys(options).filter((k) => !keys.includes(k));
  if (unknown.length === 0) {
    // null is what JSON writes for "no value", but no option takes it: read as the default it
    // would hide a mistake; only a key left out (or undefined) gives the default.
    const nulls = keys.filter((k) => (options as Record<string, unknown>)[k] === null);
    return nulls.length === 0
      ? undefined
      : `option${nulls.length > 1 ? 's' : ''} ${nulls.map((k) => `\`${k}\``).join(', ')} ` +
          `${nulls.length > 1 ? 'are' : 'is'} null: leave ${nulls.length > 1 ? 'them' : 'it'} out for the default, or give a value`;
  }
  return unknownOptionsMessage(unknown, keys);
}

/** Keys as the messages quote them: `` `a`, `b` ``. */
export function quoteKeys(keys: readonly string[]): string {
  return keys.map((k) => `\`${k}\``).join(', ');
}

/**
 * `unknown option(s) `k` (did you mean `m`?), ...; the options are ...`: the message for the keys
 * `unknown` given to a function that takes `keys` (the likely meant key is looked for among
 * `keys`); `listed` replaces the list of keys at the end (`quoteKeys(keys)` by default).
 */
export function unknownOptionsMessage(
  unknown: readonly string[],
  keys: readonly string[],
  listed = quoteKeys(keys),
): string {
  const named = unknown.map((k) => {
    const meant = closestKey(k, keys);
    return `\`${k}\`${meant ? ` (did you mean \`${meant}\`?)` : ''}`;
  });
  return `unknown option${unknown.length > 1 ? 's' : ''} ${named.join(', ')}; the options are ${listed}`;
}

// The arguments tfjs-layers 4.x documents for each plain layer (LayerArgs, the base of every
// layer's, plus DenseLayerArgs / BaseConvLayerArgs + ConvLayerArgs): a Record over `keyof` the
// args type, so the compiler refuses a list that misses one of them or names one they lack.
// (Keys and values only: nothing of tfjs is loaded here.)
type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
const BASE_LAYER_ARGS: Record<keyof LayerArgs, true> = {
  inputShape: true,
  batchInputShape: true,
  batchSize: true,
  dtype: true,
  name: true,
  trainable: true,
  weights: true,
  inputDType: true,
};
const DENSE_LAYER_ARGS: Record<keyof DenseLayerArgs, true> = {
  ...BASE_LAYER_ARGS,
  units: true,
  activation: true,
  useBias: true,
  kernelInitializer: true,
  biasInitializer: true,
  inputDim: true,
  kernelConstraint: true,
  biasConstraint: true,
  kernelRegularizer: true,
  biasRegularizer: true,
  activityRegularizer: true,
};
const CONV_LAYER_ARGS: Record<keyof ConvLayerArgs, true> = {
  ...BASE_LAYER_ARGS,
  filters: true,
  kernelSize: true,
  strides: true,
  padding: true,
  dataFormat: true,
  dilationRate: true,
  activation: true,
  useBias: true,
  kernelInitializer: true,
  biasInitializer: true,
  kernelConstraint: true,
  biasConstraint: true,
  kernelRegularizer: true,
  biasRegularizer: true,
  activityRegularizer: true,
};

// tfjs's DepthwiseConv2D takes BaseConv's arguments, kernel* included, but ignores those three
// (its kernel is its depthwise kernel) and leaves them out of its config: a decomposed one refuses
// them, where they would silently do nothing.
const DEPTHWISE_LAYER_ARGS: Record<
  Exclude<keyof DepthwiseConvLayerArgs, 'kernelInitializer' | 'kernelConstraint' | 'kernelRegularizer'>,
  true
> = {
  ...BASE_LAYER_ARGS,
  kernelSize: true,
  strides: true,
  padding: true,
  dataFormat: true,
  dilationRate: true,
  activation: true,
  useBias: true,
  biasInitializer: true,
  biasConstraint: true,
  biasRegularizer: true,
  activityRegularizer: true,
  depthMultiplier: true,
  depthwiseInitializer: true,
  depthwiseConstraint: true,
  depthwiseRegularizer: true,
};

// tfjs's SeparableConv2D refuses kernelInitializer, kernelConstraint and kernelRegularizer (its
// kernels take depthwise* and pointwise*); a decomposed one names them among the unknown keys.
const SEPARABLE_LAYER_ARGS: Record<
  Exclude<keyof SeparableConvLayerArgs, 'kernelInitializer' | 'kernelConstraint' | 'kernelRegularizer'>,
  true
> = {
  ...DEPTHWISE_LAYER_ARGS,
  filters: true,
  pointwiseInitializer: true,
  pointwiseConstraint: true,
  pointwiseRegularizer: true,
};

/** The arguments of the plain layer each decomposed layer stands for, and the tfjs function that takes them. */
const PLAIN_LAYER_ARGS = {
  dense: { factory: 'tf.layers.dense', keys: Object.keys(DENSE_LAYER_ARGS) },
  conv1d: { factory: 'tf.layers.conv1d', keys: Object.keys(CONV_LAYER_ARGS) },
  conv2d: { factory: 'tf.layers.conv2d', keys: Object.keys(CONV_LAYER_ARGS) },
  // tfjs's Conv2DTranspose takes Conv2D's arguments (and leaves dilationRate out of its config).
  conv2dTranspose: { factory: 'tf.layers.conv2dTranspose', keys: Object.keys(CONV_LAYER_ARGS) },
  depthwiseConv2d: { factory: 'tf.layers.depthwiseConv2d', keys: Object.keys(DEPTHWISE_LAYER_ARGS) },
  separableConv2d: { factory: 'tf.layers.separableConv2d', keys: Object.keys(SEPARABLE_LAYER_ARGS) },
};

/** An options object each kind of layer takes, for the message refusing a missing one. */
const EXAMPLE_ARGS: Record<keyof typeof PLAIN_LAYER_ARGS, string> = {
  dense: '{ units: 10 }',
  conv1d: '{ filters: 8, kernelSize: 3 }',
  conv2d: '{ filters: 8, kernelSize: 3 }',
  conv2dTranspose: '{ filters: 8, kernelSize: 3 }',
  depthwiseConv2d: '{ kernelSize: 3, depthMultiplier: 1 }',
  separableConv2d: '{ filters: 8, kernelSize: 3 }',
};

/** The options a decomposed layer adds to the plain layer's arguments. */
const DECOMPOSED_OPTIONS = ['granularity', 'epsilon', 'magnitudeInitializer'];

/**
 * Throws `<who>: unknown option ...` for a key of a decomposed layer's `args` that is neither one
 * of its own options nor an argument the plain layer of that `kind` takes (what Keras calls
 * "Keyword argument not understood"): tfjs would ignore it, and a misspelled `granularity` would
 * silently give the default one. `customObjects` is let through: tfjs adds it to the config it
 * deserialises a layer from. Values are not looked at (tfjs reads null as "the default").
 */
export function checkLayerArgs(who: string, args: unknown, kind: keyof typeof PLAIN_LAYER_ARGS): void {
  const { factory, keys: plain } = PLAIN_LAYER_ARGS[kind];
  // Without options the constructor failed on its own destructuring ("Cannot destructure property
  // 'granularity' of 'args' as it is undefined").
  if (args == null || typeof args !== 'object' || Array.isArray(args))
    throw new TypeError(
      `${who}: expected an options object, as ${factory} takes (${EXAMPLE_ARGS[kind]}), got ${describe(args)}`,
    );
  const keys = [...DECOMPOSED_OPTIONS, ...plain];
  const unknown = Object.keys(args).filter((k) => !keys.includes(k) && k !== 'customObjects');
  if (unknown.length === 0) return;
  const kernelOption =
    (kind === 'depthwiseConv2d' || kind === 'separableConv2d') && unknown.some((k) => /^kernel[A-Z]/.test(k));
  throw new Error(
    `${who}: ${unknownOptionsMessage(unknown, keys, `${quoteKeys(DECOMPOSED_OPTIONS)} and those of ${factory}: ${quoteKeys(plain)}`)}` +
      (!kernelOption
        ? ''
        : kind === 'depthwiseConv2d'
          ? ' (a DepthwiseConv2D ignores kernelInitializer, kernelConstraint and kernelRegularizer: its kernel takes ' +
            'depthwiseInitializer, depthwiseConstraint and depthwiseRegularizer)'
          : ' (a SeparableConv2D has no kernelInitializer, kernelConstraint or kernelRegularizer: its two kernels take ' +
            'depthwise* and pointwise* ones)'),
  );
}
