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
 * own layers when it is called on the shapes it was built for. A size no input shape fixes (a
 * model built for images of any size) stays null. Shapes include the batch axis (null). analyze
 * counts from these shapes, and prune's layer graph (buildGraph) reads its nodes' shapes from them.
 */
export function shapeResolver(): ShapeResolver {
  const memo = new Map<tfl.layers.Layer, Map<string, Shape>>();
  const resolve = (t: Source): Shape => {
    const layer = t.sourceLayer;
    if (known(t.shape.slice(1)) || !layer || typeof t.nodeIndex !== 'number') return t.shape;
    const key = `${t.nodeIndex}:${t.tensorIndex ?? 0}`;
    const seen = memo.get(layer)?.get(key);
    if (seen) return seen;
    if (!memo.has(layer)) memo.set(layer, new Map());
    // tfjs's shape while this one is worked out: an InputLayer's call reads its own output.
    memo.get(layer)!.set(key, t.shape);
    const shape = computed(layer, t.nodeIndex, t.tensorIndex ?? 0, t.shape) ?? t.shape;
    memo.get(layer)!.set(key, shape);
    return shape;
  };
  const computed = (layer: tfl.layers.Layer, nodeIndex: number, tensorIndex: number, tfjs: Shape) => {
    const node = layer.inboundNodes[nodeIndex];
    const inputs = ((node?.inputTensors ?? []) as unknown as Source[]).map(resolve);
    if (!inputs.length || !inputs.every((s) => known(s.slice(1)))) return undefined;
    let out: unknown;
    if (layer.getClassName() === 'Reshape') {
      const target = resolveTarget(
        (layer as unknown as { targetShape?: unknown }).targetShape,
        inputs[0].slice(1) as number[],
      );
      out = target && [null, ...target];
    } else if (layer instanceof tfl.LayersModel) {
      // Called on the shapes its own inputs declare: its outputs are those of its own layers.
      const own = (layer.inputs as unknown as Source[]).map((i) => i.shape);
      const same =
        own.length === inputs.length &&
        own.every(
          (s, i) =>
            s.every((d, j) => (d === null ? j === 0 : d === inputs[i][j])) && s.length === inputs[i].length,
        );
      out = same ? resolve(layer.outputs[tensorIndex] as unknown as Source) : undefined;
    } else {
      try {
        const shapes = layer.computeOutputShape(inputs.length === 1 ? inputs[0] : inputs);
        out = Array.isArray(shapes) && Array.isArray(shapes[0]) ? shapes[tensorIndex] : shapes;
      } catch {
        out = undefined; // tfjs's shape stays
      }
    }
    const shape = out as Shape | undefined;
    return Array.isArray(shape) && shape.length === tfjs.length && known(shape.slice(1)) ? shape : undefined;
  };
  return resolve;
}
