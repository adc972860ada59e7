// Training kernels for the TensorFlow.js wasm backend. They are registered
// through the public kernel registry, replacing (or adding) wasm kernels while
// keeping each upstream kernel's setupFunc, so the backend initialises exactly
// as before whether it starts before or after registration.
// The browser build imports this file: nothing here may import Node
// (threads.ts, which starts the threaded build under Node, is imported by
// backend.ts directly).
import * as tf from '@tensorflow/tfjs-core';
import { makeAvgPool, makeAvgPoolGrad } from './avg_pool.js';
import { bufferScoped, trackBuffers } from './buffer_scope.js';
import { makeClipByValue } from './clip.js';
import { makeHighRankBinary } from './binary.js';
import { transposeFirst, zeroInner } from './batch_mat_mul.js';
import { conv2DBackpropFilter, conv2DBackpropInput } from './conv2d_grad.js';
import { depthwiseChannelsLast, depthwiseStridesOrDilations, explicitPadding } from './conv_forward.js';
import { depthwiseConv2dNativeBackpropFilter, depthwiseConv2dNativeBackpropInput } from './depthwise_grad.js';
import { freshOperands } from './fresh_operands.js';
import { makeGather } from './gather.js';
import { identity, makeCast } from './identity.js';
import { makeInt32MatMul } from './int32_mat_mul.js';
import { guardMalloc } from './malloc_guard.js';
import { fusedBiasActivation } from './fused_conv.js';
import { fusedMatMulAsCpu } from './fused_mat_mul.js';
import { maxPoolGrad } from './max_pool_grad.js';
import { poolNumericPad } from './numeric_pad.js';
import { poolForward } from './pool_forward.js';
import { makePrelu } from './prelu.js';
import { makeLeadingReduce } from './reduce.js';
import { makeResizeNearestNeighbor } from './resize_nearest_neighbor.js';
import { makeReverse } from './reverse.js';
import { makeSelect } from './select.js';
import { makeSlice } from './slice.js';
import { makeStridedSlice } from './strided_slice.js';
import { makeTile } from './tile.js';
import { unsortedSegmentSum } from './unsorted_segment_sum.js';
import { KernelFn } from './util.js';

const MARK = Symbol.for('normprune.wasmTrainingKernel');
const UPSTREAM = Symbol.for('normprune.wasmTrainingKernel.upstream');

type MarkedConfig = tf.KernelConfig & { [MARK]?: true; [UPSTREAM]?: tf.KernelConfig | null };

interface KernelSpec {
  kernelName: string;
  /** Builds our kernel from the upstream one (null when upstream has none). */
  make: (upstream: KernelFn | null) => KernelFn | null;
  /** Runs when the backend is set up, after upstream's setupFunc (if any). */
  setup?: (backend: tf.KernelBackend) => void;
}

/**
 * Guards the wasm backend's _malloc (a full heap throws) and tracks its buffers (our kernels free
 * what they allocated when they throw). Anything but a wasm backend is left alone; idempotent.
 */
function prepareBackend(backend: unknown): void {
  guardMalloc(backend);
  trackBuffers(backend);
}

const SPECS: KernelSpec[] = [
  // int32 a and b: refused upstream.
  { kernelName: 'BatchMatMul', make: (up) => (up ? makeInt32MatMul(zeroInner(transposeFirst(up))) : null) },
  {
    kernelName: '_FusedMatMul',
    make: (up) => {
      const fresh = freshOperands(up, 'b');
      return fresh ? fusedMatMulAsCpu(transposeFirst(fresh)) : null;
    },
  },
  { kernelName: 'Conv2DBackpropFilter', make: () => conv2DBackpropFilter as KernelFn },
  { kernelName: 'Conv2DBackpropInput', make: () => conv2DBackpropInput as KernelFn },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    make: () => depthwiseConv2dNativeBackpropFilter as KernelFn,
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    make: () => depthwiseConv2dNativeBackpropInput as KernelFn,
  },
  { kernelName: 'MaxPoolGrad', make: () => maxPoolGrad as KernelFn },
  // tf.gather's gradient (Embedding layers); missing upstream.
  { kernelName: 'UnsortedSegmentSum', make: () => unsortedSegmentSum as KernelFn },
  { kernelName: 'AvgPoolGrad', make: (up) => makeAvgPoolGrad(up) },
  { kernelName: 'AvgPool', make: (up) => poolNumericPad(poolForward(makeAvgPool(up), 'avg'), 'AvgPool') },
  { kernelName: 'MaxPool', make: (up) => poolNumericPad(poolForward(up, 'max'), 'MaxPool') },
  { kernelName: 'Conv2D', make: (up) => explicitPadding(up, false) },
  {
    kernelName: 'FusedConv2D',
    make: (up) => explicitPadding(fusedBiasActivation(freshOperands(up, 'filter'), false), false),
  },
  {
    kernelName: 'DepthwiseConv2dNative',
    make: (up) => depthwiseChannelsLast(depthwiseStridesOrDilations(explicitPadding(up, true))),
  },
  {
    kernelName: 'FusedDepthwiseConv2D',
    make: (up) =>
      depthwiseChannelsLast(
        depthwiseStridesOrDilations(
          explicitPadding(fusedBiasActivation(freshOperands(up, 'filter'), true), true),
        ),
      ),
  },
  { kernelName: 'Prelu', make: (up) => makePrelu(up) },
  { kernelName: 'Select', make: (up) => makeSelect(up) },
  // int32 and bool x: upstream's general path returned float32 (int32 bits, bool bytes misread).
  { kernelName: 'StridedSlice', make: (up) => makeStridedSlice(up) },
  // Upstream copied all of x off the heap for every slice (model.predict slices each chunk).
  { kernelName: 'Slice', make: (up) => makeSlice(up) },
  // A bool x: upstream wrote 4 bytes an element into the 1-byte elements.
  { kernelName: 'Reverse', make: (up) => makeReverse(up) },
  // An int32 x: upstream read and wrote it as float32.
  { kernelName: 'ClipByValue', make: (up) => makeClipByValue(up) },
  // An x with no elements: upstream gave a flattened shape and kept x's and the indices' buffers.
  { kernelName: 'GatherV2', make: (up) => makeGather(up) },
  // An int32 image: upstream returned float32.
  { kernelName: 'ResizeNearestNeighbor', make: (up) => makeResizeNearestNeighbor(up) },
  // Upstream's XNNPACK binary operators: float32 operands of rank 7 or more.
  ...['Add', 'Sub', 'Multiply', 'RealDiv', 'SquaredDifference'].map((kernelName): KernelSpec => ({
    kernelName,
    make: (up) => makeHighRankBinary(up),
  })),
  { kernelName: 'Tile', make: (up) => makeTile(up) },
  { kernelName: 'Sum', make: (up) => makeLeadingReduce(up, false) },
  { kernelName: 'Mean', make: (up) => makeLeadingReduce(up, true) },
  // Its setup (any registered kernel's would do) prepares the backend.
  { kernelName: 'Identity', make: () => identity, setup: prepareBackend },
  { kernelName: 'Cast', make: (up) => makeCast(up) },
];

/** The oldest tfjs these kernels were measured to work with (tools/tfjs-versions/results.json). */
const OLDEST_TFJS = '4.6.0';

/**
 * Throws, naming the version found and the version needed, when `found` (the
 * installed tfjs-core's) is older than {@link OLDEST_TFJS}: a project that
 * forced an older tfjs past the peer range would otherwise meet the missing
 * kernels one by one, mid-training. @internal
 */
export function checkTfjsVersion(what: string, found: string = tf.version_core): void {
  const [v, oldest] = [found, OLDEST_TFJS].map((x) => x.split(/[.-]/, 3).map(Number));
  const older =
    v[0] !== oldest[0] ? v[0] < oldest[0] : v[1] !== oldest[1] ? v[1] < oldest[1] : v[2] < oldest[2];
  if (older)
    throw new Error(
      `normprune: ${what} needs TensorFlow.js ${OLDEST_TFJS} or later, found @tensorflow/tfjs-core ${found}: ` +
        'the wasm backend before 4.6 lacks gradient kernels that training uses (AvgPoolGrad; EluGrad before 4.3) ' +
        `and its threaded build before 4.5 does not start; install @tensorflow/tfjs-core, tfjs-layers, ` +
        `tfjs-backend-cpu and tfjs-backend-wasm ${OLDEST_TFJS} or later (all four at one version)`,
    );
}

function isOurs(config: tf.KernelConfig | undefined): boolean {
  return config != null && (config as MarkedConfig)[MARK] === true;
}

/**
 * Makes the TensorFlow.js `wasm` backend train fast, and train conv nets at
 * all: registers a transpose-first `BatchMatMul`/`_FusedMatMul` (transposed
 * products run 10-27x faster), `Conv2DBackpropFilter` (missing upstream, so
 * conv nets could not train), a 4-11x faster `Conv2DBackpropInput`, the
 * depthwise convolution gradients (missing upstream, so DepthwiseConv2D and
 * SeparableConv2D could not train), `UnsortedSegmentSum` (missing upstream, so
 * tf.gather's gradient, and so Embedding layers, could not train), and faster
 * `MaxPoolGrad`, `Tile`, `Sum` and
 * `Mean` (the pooling and BatchNormalization gradients), and an `Identity`
 * and same-dtype `Cast` that share their input's buffer instead of copying
 * it (tf.clone, tensor.clone() and tf.cast(x, x.dtype) allocate nothing), and a `Slice`
 * that copies the slice straight off the heap (upstream read all of x into JavaScript first, for
 * every chunk `model.predict` slices). It also corrects
 * upstream's forward convolutions where they disagree with the cpu backend:
 * 'same' padding with a stride larger than the kernel and a dimRoundingMode
 * that rounds the output up (XNNPACK computes both wrongly), fused
 * convolutions with a bias of any shape but [outChannels] (refused upstream),
 * PReLU weights such as [OH, 1, C] (misread upstream), 'leakyrelu' without
 * an alpha (0 upstream, tf.leakyRelu's 0.2 here as in tfjs-core's unfused
 * path), and depthwise convolutions with both a stride and a dilation above 1
 * (refused, as cpu does), and average pools over more than 8,192 channels
 * (upstream's puts a buffer of that many floats on the 64 KB wasm stack and
 * ran off it past about 16,000 channels, breaking every later wasm call).
 * Fused matMuls upstream computes wrongly (a bias with a batch over 1, a bias
 * other than [N], PReLU weights such as [M, 1], an empty inner dimension) run
 * as on cpu: matMul, add, activation. PReLU gives cpu's output shape (x and
 * the weights broadcast together): an empty one is returned as it is
 * (upstream trapped, dividing by empty weights' size), and weights that
 * broadcast x up repeat x (upstream gave x's shape holding garbage).
 * Pools whose dimRoundingMode rounds the output up get the explicit padding
 * that gives tfjs's size, and pools with a window wholly in the padding are
 * computed as the cpu backend computes them (-Infinity, NaN there); their
 * gradients (`MaxPoolGrad`, and upstream's `AvgPoolGrad` wrapped) read the
 * rounded-up dy tfjs-core passes as cpu does, its leading floor-sized part.
 * A Cast to bool is x != 0, as on cpu (upstream kept a truncated byte).
 * Float32 Add, Sub, Multiply, RealDiv and SquaredDifference with an operand
 * of rank 7 or more run on operands reshaped to at most 6 axes (upstream's
 * XNNPACK operators take no more, and left the output unwritten).
 * Pools and convolutions whose output is empty (a window or filter larger
 * than the padded input), and `Select` with an empty output, return it
 * without calling upstream, which wrote into it and broke the heap; `Select`
 * of bool t and e runs as on cpu (upstream copied 4 bytes an element into
 * their 1-byte elements, past the output's end), and so does `StridedSlice`
 * of int32 and bool x (upstream's general path returned float32), and
 * `Reverse` of a bool x (upstream wrote past the output's end), and
 * `ClipByValue` of an int32 x (upstream read it as float32), and
 * `GatherV2` of an x with no elements (upstream gave a flattened shape and
 * kept x's and the indices' buffers), and `ResizeNearestNeighbor` of an
 * int32 image (upstream returned float32), and `BatchMatMul` of int32
 * operands (refused upstream; computed with the cpu backend's loop), and a
 * depthwise convolution with dataFormat 'NCHW' is refused (upstream read
 * the input as NHWC); PReLU
 * weights that are not float32 are cast to it (upstream read int32 bytes as
 * float32).
 * A bias that outlives the weights it meets (a
 * kernel computed on every call), or weights that outlive their biases, go to
 * the fused kernels as a copy, so that upstream's XNNPACK cache does not keep
 * a key per call under their id. And it makes the backend throw, naming the
 * size and the fix, when a tensor does not fit in its heap (upstream then
 * writes the tensor over the start of the heap), and our kernels free the
 * buffers they allocated when they throw, so that a caller who catches the
 * error finds the heap as it was.
 * Results match the `cpu` backend to 1e-4 relative error, except for NaN:
 * upstream's XNNPACK convolutions, fused activations and pools, which these
 * kernels call unchanged, can turn a NaN into -Infinity (`Conv2D`,
 * `DepthwiseConv2dNative`, pools, fused depthwise 'linear'/'leakyrelu'/'prelu')
 * or 0 (fused 'relu'/'relu6', also -1 for depthwise 'elu'), so a model with NaN
 * weights can predict finite values on wasm; see the README ("NaN on wasm").
 *
 * Call it after `@tensorflow/tfjs-backend-wasm` has been imported (its import
 * registers the upstream kernels this builds on); before or after
 * `tf.setBackend('wasm')` both work. Idempotent: calling it again is a no-op.
 * Upstream kernels are replaced through `tf.unregisterKernel` /
 * `tf.registerKernel`, keeping their `setupFunc`.
 *
 * @throws if the wasm backend's kernels are not registered (the package was
 *   not imported), or if tfjs is older than 4.6.0 (the error names both
 *   versions).
 */
export function registerWasmTrainingKernels(): void {
  checkTfjsVersion('registerWasmTrainingKernels()');
  if (tf.getKernel('BatchMatMul', 'wasm') == null) {
    throw new Error(
      "normprune: the wasm kernels are not registered; import '@tensorflow/tfjs-backend-wasm' before calling registerWasmTrainingKernels()",
    );
  }
  for (const spec of SPECS) {
    const current = tf.getKernel(spec.kernelName, 'wasm');
    if (isOurs(current)) continue;
    const made = spec.make(current ? current.kernelFunc : null);
    if (made == null) continue;
    const kernelFunc = bufferScoped(made);
    const config: MarkedConfig = {
      kernelName: spec.kernelName,
      backendName: 'wasm',
      kernelFunc,
      [MARK]: true,
      [UPSTREAM]: current ?? null,
    };
    const upstreamSetup = current?.setupFunc;
    const setup = spec.setup;
    if (setup) {
      config.setupFunc = (backend) => {
        upstreamSetup?.(backend);
        setup(backend as tf.KernelBackend);
      };
    } else if (upstreamSetup) {
      config.setupFunc = upstreamSetup;
    }
    if (current?.disposeFunc) config.disposeFunc = current.disposeFunc;
    if (current) tf.unregisterKernel(spec.kernelName, 'wasm');
    tf.registerKernel(config);
  }
  // The engine runs setupFuncs when a backend is set; one already set is prepared now.
  prepareBackend((tf.engine() as unknown as { registry: Record<string, unknown> }).registry.wasm);
}

/**
 * Whether {@link registerWasmTrainingKernels} has replaced the wasm kernels.
 * @internal
 */
export function wasmTrainingKernelsRegistered(): boolean {
  return isOurs(tf.getKernel('BatchMatMul', 'wasm'));
}

/**
 * Puts the upstream wasm kernels back (and removes kernels upstream lacks), so
 * benchmarks and tests can compare both in one process.
 * @internal
 */
export function unregisterWasmTrainingKernels(): void {
  for (const spec of SPECS) {
    const current = tf.getKernel(spec.kernelName, 'wasm') as MarkedConfig | undefined;
    if (!isOurs(current)) continue;
    tf.unregisterKernel(spec.kernelName, 'wasm');
    const upstream = current![UPSTREAM];
    if (upstream) tf.registerKernel(upstream);
  }
}

/** Names of the kernels {@link registerWasmTrainingKernels} registers. @internal */
export const wasmTrainingKernelNames: readonly string[] = SPECS.map((s) => s.kernelName);
