import type * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  describeValue as describe,
  magnitudes as findMagnitudes,
  type MagnitudeInfo,
} from '@normprune/layers';
import { checkBoolean, checkOptionKeys } from './checks.js';
import { ProximalOptimizer } from './optimizers.js';
import { liveCounts, magnitudesOf, summarizeSparsity, type SparsityReport } from './penalty.js';

/** One epoch of `SparsityCallback.history`. */
export interface SparsityRecord extends SparsityReport {
  /**
   * Epochs completed before this one (from 0), counted across `model.fit`
   * calls: five `fit({ epochs: 1 })` calls with the same callback record
   * epochs 0 to 4, as one `fit({ epochs: 5 })` does. With `initialEpoch`, or
   * an optimiser that has counted epochs before, the count starts there.
   */
  epoch: number;
  /**
   * The lambda the epoch trained with (its last step's), which made this
   * compression, if the optimiser is a proximal one.
   */
  lambda?: number;
  /**
   * The lambda the next epoch starts with: the schedule's value once it has
   * seen this epoch (a `targetLambda` raises it here while the compression is
   * short of its target).
   */
  nextLambda?: number;
  /**
   * The compression reported to the optimiser's lambda schedule (what a
   * `targetLambda` chases): that of the decomposed layers the optimiser can
   * prune, i.e. those `fit` trains (not frozen) and, if the optimiser has
   * magnitudes attached, among them, penalised (a layer that `layerMultipliers`
   * exempts with 0 gets no threshold). Present only when it leaves some of the
   * measured layers out; otherwise it is `compression`. Absent too when no
   * measured layer can be pruned: the schedule is then given no compression.
   */
  scheduleCompression?: number;
}

/** Options of `SparsityCallback`. */
export interface SparsityCallbackOptions {
  /**
   * The magnitudes to watch: a list (`magnitudes(model)`) or a model (its decomposed layers').
   * Default: `magnitudes(model)` of the model each `fit` trains, found when it begins. A model
   * without decomposed layers is an error when training begins.
   */
  magnitudes?: tfl.LayersModel | readonly MagnitudeInfo[];
  /**
   * The proximal optimiser to report progress to (drives `targetLambda`).
   * Default: the model's optimiser as compiled when each `fit` begins, if it is a
   * `ProximalSGD`/`ProximalAdam`.
   */
  optimizer?: ProximalOptimizer;
  /**
   * Stop training (`model.stopTraining = true`) once the compression reaches this value: a
   * fraction in [0, 1] (0.9 for 90%) of the decomposed layers' kernel parameters removed,
   * `SparsityReport.compression`. Default: never stop. A value outside [0, 1] throws.
   */
  stopAtCompression?: number;
  /** Print one line per epoch (default false). */
  verbose?: boolean;
  /**
   * Read each batch's loss and, at the first that is NaN or infinite, stop training there and
   * make `fit` reject, naming the epoch, the batch and any layer whose magnitudes went NaN (as
   * Keras's `TerminateOnNaN` stops, with an error rather than a printed line). Default true.
   * Without it a diverged epoch trains to its end and is caught there, by its NaN magnitudes.
   * The check reads one number per batch from the backend: free on cpu and wasm, a pipeline
   * stall per batch on webgl, where `false` avoids it.
   */
  stopOnNaN?: boolean;
}

/**
 * A `model.fit` callback that records, at the end of every epoch, the live
 * groups per layer and the compression reached (see `measureSparsity`),
 * reports them to the proximal optimiser's lambda schedule (so `targetLambda`
 * can raise lambda until a compression is reached; the compression it
 * reports counts only the layers the optimiser can prune, see
 * `SparsityRecord.scheduleCompression`), and can stop training at
 * a target compression. Epochs count across `model.fit` calls, so a loop
 * of `fit({ epochs: 1 })` drives epoch-based schedules as one longer `fit`
 * does; use one callback per training run.
 *
 * The constructor throws for an unknown option key, `magnitudes` that are neither a model nor
 * `magnitudes()` entries, an `optimizer` that is not a ProximalSGD or ProximalAdam, a
 * `stopAtCompression` outside [0, 1] (a fraction: 0.9 for 90%), or a `verbose` or `stopOnNaN`
 * that is not a boolean. `fit` rejects when training begins for a model without decomposed
 * layers (and no `magnitudes` given), before any step (tfjs's fit would leave a tensor behind
 * per step the optimiser refuses); with `stopOnNaN` (default), after the first batch whose loss
 * is NaN or infinite, naming the epoch, the batch and the layers it left NaN.
 *
 * ```ts
 * const sparsity = new SparsityCallback({ stopAtCompression: 0.9 });
 * await model.fit(xs, ys, { epochs: 50, callbacks: [sparsity] });
 * console.log(sparsity.history.at(-1));
 * ```
 */
export class SparsityCallback extends tfl.Callback {
  /** One record per completed epoch. */
  readonly history: SparsityRecord[] = [];
  /** Stop training once the compression reaches this value (undefined: never). */
  stopAtCompression?: number;
  // As given to the constructor; what is not given is found again at every fit, from the model
  // being trained then (it may have been recompiled with another optimiser since the last fit).
  private readonly givenInfos?: tfl.LayersModel | readonly MagnitudeInfo[];
  private readonly givenOptimizer?: ProximalOptimizer;
  private infos?: readonly MagnitudeInfo[];
  private optimizer?: ProximalOptimizer;
  private readonly verbose: boolean;
  private readonly stopOnNaN: boolean;
  // The epoch training is in (counted as `history` counts it), and where the loss stopped being finite.
  private epochNow = 0;
  private diverged?: { epoch: number; batch: number; loss: number };
  // Epochs completed in earlier fit calls; fit's own counter restarts at initialEpoch in each call.
  private completed = 0;

  /** A callback for `model.fit` that records sparsity and reports each epoch to the optimiser's lambda schedule. */
  constructor(o: SparsityCallbackOptions = {}) {
    super();
    checkOptionKeys(
      'SparsityCallback',
      o,
      ['magnitudes', 'optimizer', 'stopAtCompression', 'verbose', 'stopOnNaN'],
      '{ stopAtCompression: 0.9 }',
    );
    // Checked here, not when the first epoch has trained: anything else fails there, with no word why.
    if (o.magnitudes !== undefined) magnitudesOf(o.magnitudes, 'SparsityCallback: magnitudes');
    if (o.optimizer !== undefined && !(o.optimizer instanceof ProximalOptimizer))
      throw new Error(
        `SparsityCallback: optimizer must be a ProximalSGD or ProximalAdam (it reports epochs to its lambda schedule), ` +
          `got ${describe(o.optimizer)}; leave it out to use the model's optimiser when it is one`,
      );
    this.givenInfos = o.magnitudes;
    this.givenOptimizer = o.optimizer;
    if (
      o.stopAtCompression !== undefined &&
      (typeof o.stopAtCompression !== 'number' || !(o.stopAtCompression >= 0 && o.stopAtCompression <= 1))
    )
      throw new Error(
        `SparsityCallback: stopAtCompression must lie in [0, 1] (a fraction: 0.9 for 90%), got ${describe(o.stopAtCompression)}`,
      );
    this.stopAtCompression = o.stopAtCompression;
    this.verbose = checkBoolean('SparsityCallback: verbose', o.verbose ?? false);
    this.stopOnNaN = checkBoolean('SparsityCallback: stopOnNaN', o.stopOnNaN ?? true);
  }

  /**
   * Finds the magnitudes and the optimiser if they were not given (at every
   * fit: the model trained now, as compiled now), and
   * brings the optimiser's epoch count to where training starts: the epochs
   * this callback has seen, fit's `initialEpoch`, or what the optimiser
   * already counts (restored from a saved model, or a run with another
   * callback), whichever is furthest, so that an epoch-based lambda schedule
   * goes on from there from the first step.
   */
  override async onTrainBegin(): Promise<void> {
    // A plain model would report 0% every epoch, and drive targetLambda up for nothing.
    this.infos = magnitudesOf(this.givenInfos ?? this.model, 'SparsityCallback', true);
    this.optimizer =
      this.givenOptimizer ??
      (this.model.optimizer instanceof ProximalOptimizer ? this.model.optimizer : undefined);
    const initial = (this.params as { initialEpoch?: number } | undefined)?.initialEpoch ?? 0;
    this.completed = Math.max(this.completed, initial, this.optimizer?.epochsCompleted ?? 0);
    // Always reported, also when the count is unchanged: the optimiser then knows a callback
    // drives its schedule and does not warn that epochs stand still.
    if (this.optimizer) this.optimizer.observe({ epoch: this.completed });
    this.diverged = undefined;
  }

  /**
   * Notes the epoch, for a message about a batch's loss. `fitDataset` does not give its
   * `initialEpoch` to `onTrainBegin` (tfjs sets `params.initialEpoch` to null there): the first
   * epoch it begins says where it starts, and is reported to the optimiser before its first step.
   */
  override async onEpochBegin(fitEpoch: number): Promise<void> {
    if (fitEpoch > this.completed) {
      this.completed = fitEpoch;
      this.optimizer?.observe({ epoch: fitEpoch });
    }
    this.epochNow = this.completed;
  }

  /** With `stopOnNaN`, stops training at a batch whose loss is NaN or infinite. */
  override async onBatchEnd(batch: number, logs?: tfl.Logs): Promise<void> {
    const loss = (logs as Record<string, unknown> | undefined)?.loss;
    if (!this.stopOnNaN || loss === undefined) return;
    // A scalar tensor as fit hands it (told by its data(), not instanceof: a second copy of tfjs-core
    // makes tensors of another class), or a number as a logs resolver leaves it.
    const value =
      typeof loss === 'number'
        ? loss
        : typeof (loss as tf.Tensor | undefined)?.data === 'function'
          ? (await (loss as tf.Tensor).data())[0]
          : undefined;
    if (value === undefined || Number.isFinite(value)) return;
    this.diverged = { epoch: this.epochNow, batch, loss: value };
    this.model.stopTraining = true;
  }

  /**
   * Records the epoch, informs the optimiser, and stops training at the target. A diverged
   * training is an error here, which makes `fit` reject.
   */
  override async onEpochEnd(fitEpoch: number, logs?: tfl.Logs): Promise<void> {
    try {
      await this.recordEpoch(fitEpoch);
    } catch (e) {
      // fit's History would have taken the epoch's mean loss (a tensor tfjs's BaseLogger made) and
      // disposed it; thrown past, it is ours to dispose.
      for (const v of Object.values(logs ?? {}) as unknown[])
        if (typeof (v as tf.Tensor | undefined)?.dispose === 'function') (v as tf.Tensor).dispose();
      throw e;
    }
  }

  private async recordEpoch(fitEpoch: number): Promise<void> {
    const infos = this.infos ?? findMagnitudes(this.model);
    if (this.diverged) {
      // fit stopped after the batch (onBatchEnd): its update is in the weights. Name the layers
      // it left NaN, if any (liveCounts refuses them), else the loss alone.
      const { epoch, batch, loss } = this.diverged;
      this.diverged = undefined;
      const at = `SparsityCallback: the training loss was ${loss} at epoch ${epoch + 1}, batch ${batch + 1}, where training stopped: `;
      await liveCounts(infos, at);
      throw new Error(
        `${at}training has diverged (the magnitudes are still finite): lower the learning rate or lambda, or check the data for NaN or infinite values`,
      );
    }
    // Schedules count epochs over the whole training, not per fit call.
    const epoch = Math.max(fitEpoch, this.completed);
    this.completed = epoch + 1;
    const liveByInfo = await liveCounts(infos, `SparsityCallback: after epoch ${epoch + 1}, `);
    const report = summarizeSparsity(infos, liveByInfo);
    const used = this.optimizer?.lambda;
    // A frozen layer's groups count in the model's compression, but no step can prune them: a target
    // chasing them could be out of reach, and would raise lambda until every prunable group died.
    const prunable = this.prunable(infos);
    const count = prunable.filter(Boolean).length;
    const chased =
      count === infos.length
        ? report.compression
        : count === 0
          ? undefined
          : summarizeSparsity(
              infos.filter((_, i) => prunable[i]),
              liveByInfo.filter((_, i) => prunable[i]),
            ).compression;
    // With no prunable layer the compression is reported as undefined, which clears the one an
    // earlier epoch reported (its layers since frozen): observe keeps what it is not given, and a
    // targetLambda would go on raising lambda from that stale compression.
    this.optimizer?.observe({ epoch: epoch + 1, compression: chased });
    const record: SparsityRecord = {
      epoch,
      ...report,
      ...(this.optimizer ? { lambda: used, nextLambda: this.optimizer.lambda } : {}),
      ...(count !== infos.length && chased !== undefined ? { scheduleCompression: chased } : {}),
    };
    this.history.push(record);
    if (this.verbose) {
      const live = Object.entries(report.liveGroups)
        .map(([name, n]) => `${name} ${n}/${report.totalGroups[name]}`)
        .join(', ');
      console.log(
        `epoch ${epoch + 1}: compression ${(100 * report.compression).toFixed(2)}%` +
          (record.lambda !== undefined
            ? `, lambda ${record.lambda.toExponential(3)}` +
              (record.nextLambda !== record.lambda
                ? ` (next epoch: ${record.nextLambda!.toExponential(3)})`
                : '')
            : '') +
          (record.scheduleCompression !== undefined
            ? `, compression of the prunable layers ${(100 * record.scheduleCompression).toFixed(2)}%`
            : '') +
          ` (live groups: ${live})`,
      );
    }
    if (this.stopAtCompression !== undefined && report.compression >= this.stopAtCompression) {
      this.model.stopTraining = true;
    }
  }

  /**
   * Whether the optimiser can prune each magnitude of `infos`: those `fit` updates (the model's
   * trainable weights as compiled; a layer frozen after `compile` still
   * trains until the next one, as in tfjs) and, when the optimiser has
   * magnitudes attached, among those with a penalty weight above 0 (not
   * exempted by `layerMultipliers`).
   */
  private prunable(infos: readonly MagnitudeInfo[]): boolean[] {
    // What fit differentiates: the trainable weights collected by compile() (protected in tfjs's typings).
    const collected = (this.model as unknown as { collectedTrainableWeights?: tfl.LayerVariable[] })
      .collectedTrainableWeights;
    const trained = new Set((collected ?? this.model.trainableWeights).map((w) => w.name));
    const attached = this.optimizer?.magnitudes ?? [];
    // A layer whose penalty weight is 0 (layerMultipliers: { name: 0 }) gets no threshold: no lambda
    // prunes it, so chasing its groups would raise lambda until the other layers died.
    const weights = this.optimizer?.penaltyWeights ?? [];
    const penalised = new Set(attached.filter((_, i) => weights[i] > 0).map((m) => m.magnitude.name));
    return infos.map(
      (m) => trained.has(m.magnitude.name) && (attached.length === 0 || penalised.has(m.magnitude.name)),
    );
  }
}
