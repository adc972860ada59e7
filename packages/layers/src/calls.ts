// Which calls of a layer a model makes. tfjs's `layer.inboundNodes` span every
// model built on the layer, so a layer another model also applies (to another
// input, at another size) has more nodes than it makes calls in this one.
import type * as tfl from '@tensorflow/tfjs-layers';

/**
 * The calls each layer makes in `model`'s own graph, as sorted indices into `layer.inboundNodes`:
 * found from the model's outputs back to its inputs. A nested model is one layer here, with its
 * own calls; its layers' calls are those of its own graph. @internal
 */
export function ownCalls(model: tfl.LayersModel): Map<tfl.layers.Layer, number[]> {
  const calls = new Map<tfl.layers.Layer, number[]>();
  const stack = [...(model.outputs ?? [])];
  while (stack.length) {
    const t = stack.pop()!;
    const layer = t.sourceLayer as tfl.layers.Layer | undefined;
    const i = t.nodeIndex;
    if (!layer || typeof i !== 'number') continue;
    const seen = calls.get(layer) ?? [];
    if (seen.includes(i)) continue;
    seen.push(i);
    calls.set(layer, seen);
    stack.push(...(layer.inboundNodes[i]?.inputTensors ?? []));
  }
  for (const c of calls.values()) c.sort((a, b) => a - b);
  return calls;
}
