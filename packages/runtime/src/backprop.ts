// Opt-in: a backward pass that frees what it no longer needs as it goes.
//
// tfjs-core's Engine.gradients (engine.ts, with getFilteredNodesXToY and
// backpropagateGradients of tape.ts) keeps the tensors every tape node saved
// for its gradient, and every gradient it accumulates, until the whole
// backward pass has ended: the peak memory of a training step is the forward
// pass's activations plus all the backward pass's gradients. The method below
// is a copy of that code (tfjs-core 4.11.0 to 4.22.0, Apache-2.0; those
// releases' engine.js and tape.js differ by one word of a comment) that
// disposes each node's saved tensors once the walk has passed the last node
// that reads them, and each accumulated gradient once the walk has passed the
// last node that reads or adds to it. It runs the same kernels on the same
// inputs in the same order, so every gradient keeps its bits; only the time a
// buffer is freed changes.
import * as tf from '@tensorflow/tfjs-core';

/** A node of tfjs-core's tape (tape.ts `TapeNode`). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

type Gradients = (
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy?: tf.Tensor,
  allowNoGradients?: boolean,
) => { value: tf.Tensor; grads: tf.Tensor[] };

/** The parts of tfjs-core's Engine the copy uses (checked before installing). */
interface EngineInternals {
  state: { gradientDepth: number; activeTape: TapeNode[] | null };
  gradients: Gradients;
  scopedRun<R>(start: () => void, end: () => void, f: () => R): R;
  startTape(): void;
  endTape(): void;
  tidy<R>(nameOrFn: string | (() => R), fn?: () => R): R;
  makeTensor(values: Float32Array, shape: number[], dtype: 'float32'): tf.Tensor;
}

const ENGINE_METHODS = ['gradients', 'scopedRun', 'startTape', 'endTape', 'tidy', 'makeTensor'] as const;

/** The tfjs-core versions the copy was checked against (engine.js and tape.js read, the tests run). */
export const VERIFIED_TFJS_CORE = { min: [4, 11], max: [4, 22], text: '4.11.0 to 4.22.x' } as const;

const MARK = Symbol.for('@normprune/runtime releaseSavedTensorsDuringBackprop');

interface Installed {
  original: Gradients;
  patched: Gradients;
  /** Whether `gradients` was an own property of the engine before (someone else's patch). */
  hadOwn: boolean;
  count: number;
}

type Patchable = EngineInternals & { [MARK]?: Installed };

/**
 * Throws unless `version` is a tfjs-core release the copy was verified with
 * and `engine` has every method and state field the copy uses.
 */
export function checkEngineSupported(version: string, engine: unknown): void {
  const what = 'releaseSavedTensorsDuringBackprop';
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  const [lo, hi] = [VERIFIED_TFJS_CORE.min, VERIFIED_TFJS_CORE.max];
  const major = m ? Number(m[1]) : NaN;
  const minor = m ? Number(m[2]) : NaN;
  if (!m || major !== lo[0] || minor < lo[1] || minor > hi[1]) {
    throw new Error(
      `${what}: @tensorflow/tfjs-core ${version} is not a version it was verified with ` +
        `(${VERIFIED_TFJS_CORE.text}). It replaces the engine's gradients() with a copy of that ` +
        `version's code, so it refuses to install on another. Use @tensorflow/tfjs-core ` +
        `${VERIFIED_TFJS_CORE.text}, or train without it (leave the option off: the same ` +
        `gradients, with more memory).`,
    );
  }
  const e = engine as Partial<Record<string, unknown>> & { state?: Record<string, unknown> };
  const missing: string[] = [];
  for (const name of ENGINE_METHODS) if (typeof e?.[name] !== 'function') missing.push(`${name}()`);
  const state = e?.state;
  // (state.activeTape is not checked: a fresh engine state has no such field
  // until the first gradient starts a tape.)
  if (typeof state !== 'object' || state === null) missing.push('state');
  else if (typeof state.gradientDepth !== 'number') missing.push('state.gradientDepth');
  if (missing.length > 0) {
    throw new Error(
      `${what}: the tfjs engine (@tensorflow/tfjs-core ${version}) lacks ${missing.join(', ')}, ` +
        `which the copy of its gradients() relies on. Train without it (leave the option off), ` +
        `and report the tfjs-core version and build you load.`,
    );
  }
}

/**
 * Replaces tfjs's `Engine.gradients` (used by `tf.grad`, `tf.grads`,
 * `tf.valueAndGrads`, `tf.variableGrads`, `optimizer.minimize` and so
 * `model.fit`) with a copy that disposes each tensor a tape node saved for its
 * gradient (activations, inputs, outputs) as soon as the backward walk has
 * passed the last node that reads it, and each intermediate gradient as soon
 * as the walk has passed the last node that reads or accumulates it. Upstream
 * keeps them all until the backward pass ends. On a training step of the
 * CIFAR VGG-16 (BN) at batch 128 on wasm it took the wasm heap from 2,192 to
 * 1,051 MB (0.48x) and the peak of `tf.memory().numBytes` to 0.60x
 * (`npm run bench:backprop` in the package). Every gradient keeps its exact
 * bits: the same kernels run on the same inputs in the same order.
 *
 * Opt-in, off until called; `initBackend({ releaseSavedTensorsDuringBackprop: true })`
 * calls it for you. Returns a function that undoes it (calls nest: the
 * original method is back once every returned function has been called).
 *
 * What is the same as upstream: inside a higher-order gradient (a
 * `tf.grad` run within another's function) it calls the original method, which
 * keeps the tape for the outer pass; tensors a node saved and also used
 * elsewhere (an input `x`, the result `y`, `dy`, a tensor the user kept) are
 * separate clones, so disposing the saved one frees memory only when nothing
 * else holds the buffer. What is better: when `f` or the backward pass
 * throws, the saved tensors (and `y`, when `f` created it) are disposed and
 * the engine's tape is cleared, where upstream leaves them allocated.
 *
 * @throws when the loaded `@tensorflow/tfjs-core` is not one it was verified
 * with (4.11.0 to 4.22.x) or its engine lacks a method or field the copy uses;
 * the message names the version and what to do.
 *
 * ```ts
 * const restore = releaseSavedTensorsDuringBackprop();
 * await model.fit(xs, ys, { epochs: 10 }); // same weights, lower peak memory
 * restore();
 * ```
 */
export function releaseSavedTensorsDuringBackprop(): () => void {
  const engine = tf.engine() as unknown as Patchable;
  let installed = engine[MARK];
  if (!installed) {
    checkEngineSupported(tf.version_core, engine);
    const hadOwn = Object.prototype.hasOwnProperty.call(engine, 'gradients');
    const original = engine.gradients;
    const patched: Gradients = function (this: EngineInternals, f, xs, dy, allowNoGradients = false) {
      return gradientsReleasing(this, original, f, xs, dy, allowNoGradients);
    };
    installed = { original, patched, hadOwn, count: 0 };
    engine.gradients = patched;
    engine[MARK] = installed;
  }
  const mine = installed;
  mine.count++;
  let undone = false;
  return () => {
    if (undone) return;
    undone = true;
    if (--mine.count > 0) return;
    delete engine[MARK];
    if (engine.gradients !== mine.patched) {
      throw new Error(
        'releaseSavedTensorsDuringBackprop: tf.engine().gradients was replaced by other code ' +
          'after it was installed; not restoring over that code. Undo the other replacement first.',
      );
    }
    if (mine.hadOwn) engine.gradients = mine.original;
    else delete (engine as Partial<EngineInternals>).gradients;
  };
}

/** Engine.gradients (tfjs-core 4.11-4.22), releasing as it walks. */
function gradientsReleasing(
  engine: EngineInternals,
  original: Gradients,
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy: tf.Tensor | undefined,
  allowNoGradients: boolean,
): { value: tf.Tensor; grads: tf.Tensor[] } {
  // Within another gradient's f (higher-order gradients): upstream keeps the
  // tape, which the outer pass differentiates. Do exactly that.
  if (engine.state.gradientDepth !== 0) return original.call(engine, f, xs, dy, allowNoGradients);
  tf.util.assert(xs.length > 0, () => 'gradients() received an empty list of xs.');
  if (dy != null && dy.dtype !== 'float32') {
    throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
  }
  let y: tf.Tensor | undefined;
  let tape: TapeNode[] | null = null;
  let ok = false;
  // Tensor ids only grow: a tensor with a smaller id than this marker's existed
  // before this call (a custom gradient may return one the user holds), and is
  // never disposed here.
  const marker = engine.makeTensor(new Float32Array(1), [], 'float32');
  const firstId = marker.id;
  marker.dispose();
  try {
    y = engine.scopedRun(
      () => engine.startTape(),
      () => engine.endTape(),
      () => engine.tidy('forward', f),
    );
    tf.util.assert(y instanceof tf.Tensor, () => 'The result y returned by f() must be a tensor.');
    const yy = y;
    const nodes = (tape = engine.state.activeTape ?? []);
    // Filter out the nodes that don't connect x => y.
    const filtered = getFilteredNodesXToY(nodes, xs, yy);
    if (!allowNoGradients && filtered.length === 0 && xs.length > 0) {
      throw new Error(
        'Cannot compute gradient of y=f(x) with respect to x. Make sure ' +
          'that the f you passed encloses all operations that lead from x ' +
          'to y.',
      );
    }
    const result = engine.tidy('backward', () => {
      const grads: Record<number, tf.Tensor> = {};
      grads[yy.id] = dy == null ? ones(engine, yy.shape) : dy;
      backpropagateReleasing(engine, grads, filtered, nodes, xs, yy, dy, firstId);
      return { value: yy, grads: xs.map((x) => grads[x.id]) };
    });
    ok = true;
    return result;
  } finally {
    // As upstream does at gradientDepth 0 (after a success): dispose what
    // every node saved (most of it is gone already) and drop the tape. After
    // an error too, where upstream leaves both. (This call's own tape: a
    // gradient computed inside a gradient function would have replaced the
    // engine's.)
    const all = tape ?? engine.state.activeTape;
    if (all) for (const node of all) for (const t of node.saved ?? []) t.dispose();
    if (!ok && y instanceof tf.Tensor && !y.kept && all?.some((n) => n.outputs.includes(y!))) {
      y.dispose();
    }
    engine.state.activeTape = null;
  }
}

function ones(engine: EngineInternals, shape: number[]): tf.Tensor {
  const values = tf.util.makeOnesTypedArray(tf.util.sizeFromShape(shape), 'float32') as Float32Array;
  return engine.makeTensor(values, shape, 'float32');
}

/**
 * tape.ts backpropagateGradients, plus: the saved tensors of nodes off the
 * x -> y path are disposed first (never read); after each node, its saved
 * tensors are disposed when no node still to run holds them, and each
 * gradient whose tensor no node still to run reads or accumulates into is
 * disposed. Never disposed early: `dy`, the gradients of `xs`, and any tensor
 * still held as a gradient or by a node still to run (all disposed where
 * upstream disposes them, or returned). Never disposed at all: a tensor made
 * before the call (id below `firstId`), which a custom gradient may return.
 */
function backpropagateReleasing(
  engine: EngineInternals,
  grads: Record<number, tf.Tensor>,
  filtered: TapeNode[],
  tape: TapeNode[],
  xs: tf.Tensor[],
  y: tf.Tensor,
  dy: tf.Tensor | undefined,
  firstId: number,
): void {
  const xIds = new Set(xs.map((x) => x.id));
  // How many map entries hold each tensor object (a gradient function may
  // return a tensor it was given, so one tensor can be several entries).
  const refs = new Map<tf.Tensor, number>([[grads[y.id], 1]]);
  const unref = (t: tf.Tensor) => refs.set(t, (refs.get(t) ?? 0) - 1);
  const setGrad = (id: number, t: tf.Tensor) => {
    const old = grads[id];
    if (old !== undefined) unref(old);
    grads[id] = t;
    refs.set(t, (refs.get(t) ?? 0) + 1);
  };
  // Saved tensors held by nodes still to run.
  const pending = new Map<tf.Tensor, number>();
  for (const node of filtered) {
    for (const t of node.saved ?? []) pending.set(t, (pending.get(t) ?? 0) + 1);
  }
  const release = (t: tf.Tensor) => {
    if (t.id < firstId || t === dy || xIds.has(t.id) || t.id === y.id) return;
    if ((refs.get(t) ?? 0) > 0 || (pending.get(t) ?? 0) > 0) return;
    t.dispose();
  };
  const onPath = new Set(filtered.map((n) => n.id));
  for (const node of tape) {
    if (!onPath.has(node.id)) for (const t of node.saved ?? []) release(t);
  }
  // The gradient of tensor t is read by the node that output it and added to
  // by the nodes that took it as input; the walk goes from the last node to
  // the first, so the entry is done after the first node that mentions t.
  const doneAfter: number[][] = filtered.map(() => []);
  const seen = new Set<number>();
  filtered.forEach((node, i) => {
    for (const t of [...node.outputs, ...Object.values(node.inputs)]) {
      if (!seen.has(t.id)) {
        seen.add(t.id);
        if (!xIds.has(t.id)) doneAfter[i].push(t.id);
      }
    }
  });

  // Walk the tape backward and keep a map of Tensor to its gradient.
  for (let i = filtered.length - 1; i >= 0; i--) {
    const node = filtered[i];
    const gradient = node.gradient;
    const dys = node.outputs.map((o) => grads[o.id] ?? null);
    if (gradient == null) {
      throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    }
    const names = Object.keys(node.inputs);
    // One scope per node, so that the zeros the node makes for outputs off
    // the path (and anything else its gradient allocates) go with it.
    const dxs = engine.tidy(() => {
      // Backprop dy through this node and accumulate gradients over the inputs.
      const inputGradients = gradient(dys);
      return names.map((inputName) => {
        if (!(inputName in inputGradients)) {
          throw new Error(
            `Cannot backprop through input ${inputName}. ` +
              `Available gradients found: ${Object.keys(inputGradients)}.`,
          );
        }
        // Call the gradient function.
        const dx = engine.tidy(() => inputGradients[inputName]());
        if (dx.dtype !== 'float32') {
          throw new Error(
            `Error in gradient for op ${node.kernelName}. The gradient of input ` +
              `${inputName} must have 'float32' dtype, but has '${dx.dtype}'`,
          );
        }
        const x = node.inputs[inputName];
        if (!tf.util.arraysEqual(dx.shape, x.shape)) {
          throw new Error(
            `Error in gradient for op ${node.kernelName}. The gradient of input ` +
              `'${inputName}' has shape '${dx.shape}', which does not match ` +
              `the shape of the input '${x.shape}'`,
          );
        }
        return dx;
      });
    });
    names.forEach((inputName, k) => {
      const x = node.inputs[inputName];
      const dx = dxs[k];
      const cur = grads[x.id];
      if (cur == null) {
        setGrad(x.id, dx);
      } else {
        setGrad(x.id, tf.add(cur, dx));
        release(cur);
        release(dx);
      }
    });
    for (const t of node.saved ?? []) {
      pending.set(t, pending.get(t)! - 1);
      release(t);
    }
    for (const id of doneAfter[i]) {
      const g = grads[id];
      if (g === undefined) continue;
      delete grads[id];
      unref(g);
      release(g);
    }
  }
}

/**
 * tape.ts getFilteredNodesXToY: the tape nodes that connect x to y, in tape
 * order, each a copy whose inputs are pruned to those that are a function of x.
 */
function getFilteredNodesXToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  // Forward pass to compute all the nodes and Tensors that are transitively a
  // function of x.
  const tensorsFromX: Record<number, boolean> = {};
  const nodesFromX: Record<number, boolean> = {};
  for (const x of xs) tensorsFromX[x.id] = true;
  for (const node of tape) {
    for (const inputName in node.inputs) {
      if (tensorsFromX[node.inputs[inputName].id]) {
        for (const output of node.outputs) tensorsFromX[output.id] = true;
        nodesFromX[node.id] = true;
        break;
      }
    }
  }
  // Backward pass to find all of the nodes and Tensors that lead to y.
  const tensorsLeadToY: Record<number, boolean> = {};
  tensorsLeadToY[y.id] = true;
  const nodesToY: Record<number, boolean> = {};
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    for (const output of node.outputs) {
      if (tensorsLeadToY[output.id]) {
        for (const inputName in node.inputs) {
          tensorsLeadToY[node.inputs[inputName].id] = true;
          nodesToY[node.id] = true;
        }
        break;
      }
    }
  }
  // Return the paths that come from x and lead to y.
  const filtered: TapeNode[] = [];
  for (const node of tape) {
    if (nodesFromX[node.id] && nodesToY[node.id]) {
      // Prune the inputs from the node that aren't a function of x.
      const prunedInputs: Record<string, tf.Tensor> = {};
      for (const inputName in node.inputs) {
        const nodeInput = node.inputs[inputName];
        if (tensorsFromX[nodeInput.id]) prunedInputs[inputName] = nodeInput;
      }
      filtered.push({ ...node, inputs: prunedInputs, outputs: node.outputs });
    }
  }
  return filtered;
}
