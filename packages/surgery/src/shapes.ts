// The shapes of a model's tensors as the model computes them, where tfjs's own leave a size
// unknown that the model's input shapes fix.
import * as tfl from '@tensorflow/tfjs-layers';

type Shape = (number | null)[];

/**
 * A Reshape's `targetShape` with its -1 resolved from `inShape` (fully known, without the batch):
 * the -1 stands for the input's entries over those of the other axes. Undefined where it does not
 * resolve (no -1, or the other axes do not divide the input's size).
 */
export function resolveTarget(target: unknown, inShape: number[]): number[] | undefined {
  // The layer holds its -1 as null (its config writes -1 back).
  const unknown = (d: unknown) => d == null || d === -1;
  if (!Array.isArray(target) || target.filter(unknown).length !== 1) return undefined;
  const size = inShape.reduce((a, b) => a * b, 1);
  const rest = target.reduce((a: number, d: unknown) => (unknown(d) ? a : a * Number(d)), 1);
  if (!(rest > 0) || size % rest !== 0) return undefined;
  return target.map((d: unknown) => (unknown(d) ? size / rest : Number(d)));
}

export const known = (shape: (number | null)[]): shape is number[] =>
  shape.every((d) => typeof d === 'number' && d >= 0);

/** The layer, call and output index a symbolic tensor comes from. */
export interface Source {
  sourceLayer?: tfl.layers.Layer;
  nodeIndex?: number;
  tensorIndex?: number;
  shape: Shape;
}

/** The shape of a symbolic tensor, with the batch axis. */
export type ShapeResolver = (t: Source) => Shape;

/**
 * tfjs 4.22 leaves the -1 of a Reshape's targetShape unknown (null) in the shape it infers, even
 * where the input's shape is fully known, and so the shapes of every layer after it (a Conv1D
 * after `reshape([-1, 6])`: its output length, hence its MACs). This gives each tensor's shape
 * with such sizes worked out: a Reshape's -1 from its fully known input shape, a layer after it
 * from its own `computeOutputShape` of the shapes it reads, a nested model's outputs from its
 * own layers at the shapes its call reads (see {@link nestedResolver}). A size no input shape
 * fixes (a model built for images of any size) stays null. Shapes include the batch axis (null).
 * analyze counts from these shapes, and prune's layer graph (buildGraph) reads its nodes' shapes
 * from them.
 *
 * `call`: the resolver of the tensors inside a nested model called on shapes other than its inputs
 * declare; tfjs's shapes there are those of the declared ones, so each is worked out from the
 * call's, a known one too.
 */
export function shapeResolver(call?: { model: tfl.LayersModel; shapes: Shape[] }): ShapeResolver {
  const memo = new Map<tfl.layers.Layer, Map<string, Shape>>();
  const fresh = call !== undefined;
  const remember = (layer: tfl.layers.Layer, key: string, shape: Shape) => {
    if (!memo.has(layer)) memo.set(layer, new Map());
    memo.get(layer)!.set(key, shape);
  };
  const keyOf = (t: Source) => `${t.nodeIndex}:${t.tensorIndex ?? 0}`;
  (call?.model.inputs as unknown as Source[] | undefined)?.forEach((t, i) => {
    if (t.sourceLayer) remember(t.sourceLayer, keyOf(t), call!.shapes[i]);
  });
  /** The shape of `t` where it needs no working out, or is worked out already. */
  const settled = (t: Source): Shape | undefined => {
    const layer = t.sourceLayer;
    if ((!fresh && known(t.shape.slice(1))) || !layer || typeof t.nodeIndex !== 'number') return t.shape;
    return memo.get(layer)?.get(keyOf(t));
  };
  const inputsOf = (t: Source) =>
    (t.sourceLayer!.inboundNodes[t.nodeIndex!]?.inputTensors ?? []) as unknown as Source[];
  // Each tensor after those it reads, on a stack of its own: a recursion overflowed the call
  // stack on a chain of a few thousand layers after a Reshape.
  const resolve = (t: Source): Shape => {
    const stack = [t];
    const opened = new Set<Source>();
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (settled(top)) stack.pop();
      else if (!opened.has(top)) {
        opened.add(top);
        stack.push(...inputsOf(top).filter((i) => !settled(i)));
      } else {
        stack.pop();
        // tfjs's shape while this one is worked out: an InputLayer's call reads its own output.
        remember(top.sourceLayer!, keyOf(top), top.shape);
        remember(top.sourceLayer!, keyOf(top), computed(top) ?? top.shape);
      }
    }
    return settled(t)!;
  };
  const computed = (t: Source) => {
    const layer = t.sourceLayer!;
    const tensorIndex = t.tensorIndex ?? 0;
    const inputs = inputsOf(t).map((i) => settled(i) ?? i.shape);
    if (!inputs.length || (!fresh && !inputs.every((s) => known(s.slice(1))))) return undefined;
    const target =
      layer.getClassName() === 'Reshape' && known(inputs[0].slice(1))
        ? resolveTarget(
            (layer as unknown as { targetShape?: unknown }).targetShape,
            inputs[0].slice(1) as number[],
          )
        : undefined;
    let out: unknown;
    if (target) out = [null, ...target];
    else if (layer instanceof tfl.LayersModel)
      out = nestedResolver(layer, inputs, resolve)(layer.outputs[tensorIndex] as unknown as Source);
    else
      try {
        const shapes = layer.computeOutputShape(inputs.length === 1 ? inputs[0] : inputs);
        out = Array.isArray(shapes) && Array.isArray(shapes[0]) ? shapes[tensorIndex] : shapes;
      } catch {
        out = undefined; // tfjs's shape stays
      }
    const shape = out as Shape | undefined;
    return Array.isArray(shape) && shape.length === t.shape.length && (fresh || known(shape.slice(1)))
      ? shape
      : undefined;
  };
  return resolve;
}

/**
 * The resolver of the tensors inside `model`, a nested model, for one call of it on `shapes` (as
 * `resolve`, its caller's resolver, gives them): `resolve` itself where those are the shapes its
 * inputs declare (but for the batch), else one that works them out from the call's (a model
 * built for inputs of any size, called on fixed ones).
 */
export function nestedResolver(
  model: tfl.LayersModel,
  shapes: Shape[],
  resolve: ShapeResolver,
): ShapeResolver {
  const declared = (model.inputs as unknown as Source[]).map((t) => t.shape);
  const same =
    declared.length === shapes.length &&
    declared.every(
      (s, i) => s.length === shapes[i].length && s.every((d, j) => j === 0 || d === shapes[i][j]),
    );
  return same ? resolve : shapeResolver({ model, shapes });
}
