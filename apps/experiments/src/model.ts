// Builds the plain (undecomposed) model an experiment describes. Every
// initializer gets its own seed derived from the run seed, so two runs with
// the same --seed on the same backend start from identical weights.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { magnitudes, type MagnitudeInfo } from '@normprune/layers';
import { fileSystem, ModelFileError } from '@normprune/runtime';
import { hardThreshold, keepLargestFilters, keepLargestGroups } from '@normprune/prox';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layerNames, type LayerSpec } from './config.js';

/** Builds a plain tfjs-layers model from layer specs; the last dense layer outputs logits. */
export function buildModel(
  layers: LayerSpec[],
  inputShape: [number, number, number],
  seed: number,
): tfl.LayersModel {
  const model = tfl.sequential();
  let seedCounter = 0;
  const init = () => tfl.initializers.glorotUniform({ seed: seed * 1000 + ++seedCounter });
  const names = layerNames(layers);
  let first = true;
  const input = () => {
    const o = first ? { inputShape } : {};
    first = false;
    return o;
  };
  layers.forEach((spec, i) => {
    const [name, bnName, actName] = names[i];
    switch (spec.type) {
      case 'flatten':
        model.add(tfl.layers.flatten({ ...input(), name }));
        break;
      case 'maxPool2d':
        model.add(
          tfl.layers.maxPooling2d({
            ...input(),
            poolSize: spec.poolSize,
            strides: spec.strides ?? spec.poolSize,
            name,
          }),
        );
        break;
      case 'dense':
        model.add(
          tfl.layers.dense({
            ...input(),
            units: spec.units,
            activation: spec.activation,
            kernelInitializer: init(),
            biasInitializer: 'zeros',
            name,
          }),
        );
        break;
      case 'conv2d':
      case 'depthwiseConv2d': {
        const common = {
          ...input(),
          kernelSize: spec.kernelSize,
          strides: spec.strides,
          padding: spec.padding,
          activation: spec.batchNorm ? 'linear' : spec.activation,
          biasInitializer: 'zeros',
          name,
        } as const;
        model.add(
          spec.type === 'conv2d'
            ? tfl.layers.conv2d({ ...common, filters: spec.filters, kernelInitializer: init() })
            : tfl.layers.depthwiseConv2d({
                ...common,
                depthMultiplier: spec.depthMultiplier,
                depthwiseInitializer: init(),
              }),
        );
        if (spec.batchNorm) {
          // Momentum 0.9 (not Keras's 0.99): short, reduced-budget runs take a few
          // hundred steps, too few for 0.99 moving statistics to forget their init.
          model.add(tfl.layers.batchNormalization({ axis: -1, momentum: 0.9, name: bnName }));
          if (spec.activation !== 'linear')
            model.add(tfl.layers.activation({ activation: spec.activation, name: actName }));
        }
        break;
      }
    }
  });
  return model;
}

/** Name of the logits layer (the last layer). */
export function logitsLayerName(model: tfl.LayersModel): string {
  return model.layers[model.layers.length - 1].name;
}

/**
 * A refusal of `pruneMagnitudes`'s rule: `field` says which part was refused
 * (`keep` or `keepFilters`, as in a config's `prune`), `reason` why (the prox
 * function's message without its name, in the words of `normprune prune`'s
 * flags); the message names the config fields, not the prox functions.
 */
export class PruneRuleError extends Error {
  /** Why, without the field, naming `--keep` where prox names `keepLargestGroups`. */
  readonly reason: string;

  constructor(
    readonly field: 'keep' | 'keepFilters',
    cause: Error,
  ) {
    const why = cause.message.replace(/^keepLargest(Groups|Filters): /, '');
    const naming = (keep: string) => why.replace(/use keepLargestGroups/g, `give its count in ${keep}`);
    super(`prune.${field}: ${naming('prune.keep')}`, { cause });
    this.name = 'PruneRuleError';
    this.reason = naming('--keep');
  }
}

/**
 * Runs one prox selection of the rule's `field`, its refusal a PruneRuleError. Prox refuses an
 * argument with a RangeError or TypeError; anything else (a NaN magnitude, a failing backend) is
 * not the rule's fault and passes through as it is.
 */
function underRule(field: 'keep' | 'keepFilters', select: () => void): void {
  try {
    select();
  } catch (e) {
    throw e instanceof RangeError || e instanceof TypeError ? new PruneRuleError(field, e) : e;
  }
}

/**
 * The group rule of a run's prune step and of `normprune prune`, layer by
 * layer in model order: for a Conv2D, Conv2DTranspose or DepthwiseConv2D layer named in
 * `keepFilters`, its kernels on input channels the Conv2D, Conv2DTranspose or DepthwiseConv2D
 * layer before it (through pooling, batch normalisation and activation layers) leaves dead are
 * dropped, then at most `keepFilters[layer]` filters (a depthwise layer's: input channels) stay
 * alive (those of largest norm); then at most `keep[layer]` groups of each
 * named decomposed layer stay alive (those with the largest magnitudes).
 * Last, every group whose magnitude is at or below `threshold` dies (its
 * magnitude becomes exactly 0). Surgery then removes the dead groups. The
 * threshold applies to magnitudes, group by group, never to single weights.
 * Changes `model`'s magnitudes in place; a refused rule (a PruneRuleError)
 * changes none.
 */
export function pruneMagnitudes(
  model: tfl.LayersModel,
  rule: { threshold: number; keep?: Record<string, number>; keepFilters?: Record<string, number> },
): void {
  const infos = magnitudes(model);
  // Names of no decomposed layer: the prox functions refuse them, naming the layers there are,
  // before anything changes.
  const known = new Set(infos.map((m) => m.layerName));
  const unknown = (keep: Record<string, number> | undefined) =>
    Object.fromEntries(Object.entries(keep ?? {}).filter(([name]) => !known.has(name)));
  underRule('keepFilters', () => keepLargestFilters(infos, unknown(rule.keepFilters)));
  underRule('keep', () => keepLargestGroups(infos, unknown(rule.keep)));
  // Any other refusal (a bad count, a layer of the wrong granularity) leaves every magnitude as it was.
  const saved = infos.map((m) => m.magnitude.clone());
  try {
    for (const m of infos) {
      const name = m.layerName;
      if (rule.keepFilters?.[name] !== undefined) {
        if (m.granularity === 'kernel') dropDeadInputs(model, m, infos);
        const k = rule.keepFilters[name];
        underRule('keepFilters', () => keepLargestFilters([m], { [name]: k }));
      }
      const k = rule.keep?.[name];
      if (k !== undefined) underRule('keep', () => keepLargestGroups([m], { [name]: k }));
    }
  } catch (e) {
    infos.forEach((m, i) => m.magnitude.assign(saved[i]));
    throw e;
  } finally {
    tf.dispose(saved);
  }
  if (rule.threshold > 0)
    for (const m of infos) {
      const kept = hardThreshold(m.magnitude, rule.threshold);
      m.magnitude.assign(kept);
      kept.dispose();
    }
}

/**
 * Zeroes the kernels of a 'kernel' Conv2D, Conv2DTranspose or DepthwiseConv2D layer that read a
 * dead channel of the decomposed Conv2D, Conv2DTranspose or DepthwiseConv2D layer before it (only
 * pooling, batch normalisation and activation layers between, which surgery prunes channel by
 * channel with it): surgery removes them anyway, so a selection by norm must not spend its budget
 * on them. A Conv2D's magnitude is [inChannels, filters], a Conv2DTranspose's [filters,
 * inChannels] (its kernel's order), a DepthwiseConv2D's [inChannels, depthMultiplier] (its output
 * channel c * depthMultiplier + m being kernel [c, m]): each side reads the channel and filter
 * axes from its own layout.
 */
function dropDeadInputs(
  model: tfl.LayersModel,
  target: MagnitudeInfo,
  infos: readonly MagnitudeInfo[],
): void {
  const at = model.layers.findIndex((l) => l.name === target.layerName);
  for (let j = at - 1; j >= 0; j--) {
    const layer = model.layers[j];
    const before = infos.find((m) => m.layerName === layer.name);
    if (before) {
      // The layers' own description of their layout, not their class names (a copy of
      // @normprune/layers from another install has the same fields).
      const prev = before.layer;
      if (!('rank' in prev) || prev.rank !== 2) return;
      const mask = tf.tidy(() => {
        const mag = before.magnitude;
        // A channel is dead when all its magnitudes are 0: per filter ('filter'), per kernel
        // column ('kernel' Conv2D) or row ('kernel' Conv2DTranspose); a depthwise layer's output
        // channel when its kernel's is ('kernel') or its input channel's ('filter').
        const live = prev.depthwise
          ? depthwiseLiveChannels(mag, prev.depthMultiplier ?? 1)
          : mag.rank === 2
            ? tf.any(tf.notEqual(mag, 0), prev.transposed ? 1 : 0)
            : tf.notEqual(mag, 0);
        const transposed = 'transposed' in target.layer && target.layer.transposed;
        return tf.expandDims(tf.cast(live, target.magnitude.dtype), transposed ? 0 : 1);
      });
      const kept = tf.mul(target.magnitude, mask);
      target.magnitude.assign(kept);
      tf.dispose([mask, kept]);
      return;
    }
    if (!/Pooling2D$|^BatchNormalization$|^Activation$/.test(layer.getClassName())) return;
  }
}

/**
 * 1 for each live output channel of a decomposed DepthwiseConv2D, 0 for a dead one: channel
 * c * depthMultiplier + m reads kernel [c, m], whose magnitude is [c, m] ('kernel') or [c] ('filter').
 */
function depthwiseLiveChannels(magnitude: tf.Tensor, depthMultiplier: number): tf.Tensor1D {
  return tf.tidy(() => {
    const live = tf.cast(tf.notEqual(magnitude, 0), 'float32');
    const perKernel = live.rank === 2 ? live : tf.tile(tf.expandDims(live, 1), [1, depthMultiplier]);
    return tf.reshape(perKernel, [-1]) as tf.Tensor1D;
  });
}

/**
 * Loads the tfjs model saved in `dir`. tfjs reports what it finds wrong after the file is read,
 * without naming it; the error then names `dir`'s model.json and what to do: `again` says how to
 * make the folder afresh ('' leaves that to the caller, which adds its own).
 */
export async function loadModelDir(
  dir: string,
  again = 'copy it again, or rerun the run or prune that wrote it',
): Promise<tfl.LayersModel> {
  const graph = graphModelFile(join(dir, 'model.json'));
  if (graph) throw new Error(graph);
  try {
    return await tfl.loadLayersModel(fileSystem(dir));
  } catch (e) {
    // The runtime's file handler names the file itself, and says by its code what is wrong.
    if (e instanceof ModelFileError)
      throw e.code === 'damaged'
        ? new Error(
            `${e.message}; the model folder is damaged or incomplete (cut short by a copy or a full disk?)${
              again ? `: ${again}` : ''
            }`,
            {
              cause: e,
            },
          )
        : e;
    throw new Error(buildProblem(join(dir, 'model.json'), (e as Error).message ?? String(e), again), {
      cause: e,
    });
  }
}

/**
 * The refusal of a tfjs graph model (tensorflowjs_converter's `"format": "graph-model"`, a
 * TensorFlow graph of ops, not of layers), which tfjs-layers cannot load and normprune cannot
 * prune; undefined for any other file (one that does not parse is left to the loader's message).
 */
function graphModelFile(file: string): string | undefined {
  let j: { format?: unknown; modelTopology?: { node?: unknown } } | null;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  if (j?.format !== 'graph-model' && !Array.isArray(j?.modelTopology?.node)) return undefined;
  return (
    `Cannot load model: ${file} is a tfjs graph model ("format": "graph-model", a TensorFlow graph of ops ` +
    'converted by tensorflowjs_converter); normprune evaluates and prunes Layers models only ' +
    '("format": "layers-model": saved by tf.LayersModel.save(), or converted from a Keras model with ' +
    '--output_format tfjs_layers_model)'
  );
}

/** What a tfjs error while building a model from its files means; tfjs's messages may run to several lines. */
function buildProblem(file: string, message: string, again: string): string {
  const first = message.split('\n')[0].trim();
  const unknown = /^Unknown layer: ([^\s.]+)/.exec(first);
  if (unknown)
    return (
      `Cannot load model: ${file} uses the layer class ${unknown[1]}, which is neither a tfjs layer nor a ` +
      'normprune one; load it in your own code, which registers that class ' +
      '(tf.serialization.registerClass), and prune it there with @normprune/surgery'
    );
  const mismatch = /Shape mismatch|no target variable|weights are not set|expected \d+ weights/i.test(first);
  return (
    `Cannot load model: ${file}: ${first}; ` +
    (mismatch
      ? 'its modelTopology and weightsManifest disagree (edited, or its parts from two saves?)'
      : 'tfjs cannot build the model it describes (edited by hand, or saved by another version?)') +
    (again ? `: ${again}` : '')
  );
}
