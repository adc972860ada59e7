// What a user of all five packages does, against whatever tfjs is installed:
// parse a small CIFAR-style image folder, decompose a conv + dense model, compare
// its gradients on wasm (training kernels registered) with cpu, train it with
// ProximalAdam on both, prune it, save and load it through the file system.
// Prints one JSON line of measured figures.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
require('@tensorflow/tfjs-backend-cpu');
const jpeg = require('jpeg-js');
const runtime = require('@normprune/runtime');
const datasets = require('@normprune/datasets');
const layers = require('@normprune/layers');
const prox = require('@normprune/prox');
const surgery = require('@normprune/surgery');

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** A 16x16 JPEG of pseudo-random pixels (deterministic per seed). */
function image(seed) {
  let s = seed >>> 0;
  const data = Buffer.alloc(32 * 32 * 4);
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = i % 4 === 3 ? 255 : s >>> 24;
  }
  return jpeg.encode({ data, width: 32, height: 32 }, 95).data;
}

function build(seed) {
  const init = (s) => tfl.initializers.glorotUniform({ seed: seed + s });
  const plain = tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [32, 32, 3],
        filters: 6,
        kernelSize: 3,
        strides: 2,
        activation: 'relu',
        kernelInitializer: init(1),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init(2),
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 12, activation: 'relu', kernelInitializer: init(3) }),
      tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
  const model = layers.decompose(plain, { granularity: { conv2d: 'filter' } });
  plain.dispose();
  return model;
}

function maxRelDiff(a, b) {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(scale, 1e-12));
  return worst;
}

/** Gradients and a few ProximalAdam steps of the same model and data on `backend`. */
async function onBackend(backend, weights, xs, ys) {
  await tf.setBackend(backend);
  const x = tf.tensor(xs.values, xs.shape);
  const y = tf.tensor(ys.values, ys.shape);
  const model = build(0);
  model.setWeights(weights.map((w) => tf.tensor(w.values, w.shape)));
  const vars = model.trainableWeights.map((w) => w.read());
  const { value, grads } = tf.variableGrads(
    () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true })),
    vars,
  );
  const gradients = vars.map((v) => grads[v.name].dataSync().slice());
  tf.dispose([value, ...Object.values(grads)]);
  const optimizer = new prox.ProximalAdam({
    learningRate: 0.02,
    lambda: 0.005,
    magnitudes: layers.magnitudes(model),
  });
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  await model.fit(x, y, { epochs: 1, batchSize: 10, shuffle: false, verbose: 0 });
  const before = tf.memory().numTensors;
  await model.fit(x, y, { epochs: 4, batchSize: 10, shuffle: false, verbose: 0 });
  const leaked = tf.memory().numTensors - before;
  const trained = model.getWeights().map((w) => w.dataSync().slice());
  tf.dispose([x, y]);
  return { model, gradients, trained, leaked };
}

(async () => {
  const out = { tfjs: tf.version_core };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-tfjs-version-'));
  try {
    // datasets: an image-folder CIFAR-10, 2 train and 1 test image per class.
    for (const [split, n] of [
      ['train', 2],
      ['test', 1],
    ])
      CLASSES.forEach((c, k) => {
        fs.mkdirSync(path.join(dir, 'cifar', split, c), { recursive: true });
        for (let i = 0; i < n; i++)
          fs.writeFileSync(
            path.join(dir, 'cifar', split, c, `${i}.jpg`),
            image(100 * k + i + (split === 'test' ? 50 : 0)),
          );
      });
    await tf.setBackend('cpu');
    const ds = await datasets.loadCifar10({
      dir: path.join(dir, 'cifar'),
      cacheDir: path.join(dir, 'cache'),
      offline: true,
    });
    const { xs, ys } = datasets.toTensors(ds.train, { normalize: 'unit', oneHot: true });
    out.dataset = { train: ds.train.count, test: ds.test.count, xs: xs.shape, ys: ys.shape };
    const data = {
      xs: { values: xs.dataSync().slice(), shape: xs.shape },
      ys: { values: ys.dataSync().slice(), shape: ys.shape },
    };
    tf.dispose([xs, ys]);

    // The same initial weights on both backends.
    const initial = build(0);
    const weights = initial.getWeights().map((w) => ({ values: w.dataSync().slice(), shape: w.shape }));
    initial.dispose();

    const cpu = await onBackend('cpu', weights, data.xs, data.ys);
    const info = await runtime.initBackend({ prefer: 'wasm', quiet: true });
    if (info.backend !== 'wasm' || !info.trainingKernels)
      throw new Error(`wasm with normprune's training kernels did not start: ${info.reason}`);
    out.backend = { backend: info.backend, trainingKernels: info.trainingKernels };
    const wasm = await onBackend('wasm', weights, data.xs, data.ys);
    out.gradientRelDiff = Math.max(...cpu.gradients.map((g, i) => maxRelDiff(g, wasm.gradients[i])));
    out.trainedRelDiff = Math.max(...cpu.trained.map((w, i) => maxRelDiff(w, wasm.trained[i])));
    out.leaked = { cpu: cpu.leaked, wasm: wasm.leaked };

    // Prune the wasm-trained model, with half of the first layer's filters dead
    // (the penalty alone kills a number of groups that depends on the
    // initialisation, which differs between tfjs versions), their biases 0 so
    // that nothing of them is left to keep.
    const first = layers.magnitudes(wasm.model)[0];
    const g = first.magnitude.dataSync().map((v, i) => (i % 2 === 0 ? 0 : v));
    first.magnitude.assign(tf.tensor(g, first.magnitude.shape));
    const bias = wasm.model.layers[0].weights.find((w) => w.name.includes('bias'));
    bias.write(
      tf.tensor(
        bias
          .read()
          .dataSync()
          .map((v, i) => (i % 2 === 0 ? 0 : v)),
        bias.shape,
      ),
    );
    out.zeros = layers
      .magnitudes(wasm.model)
      .map((m) => Array.from(m.magnitude.dataSync()).filter((v) => v === 0).length);
    const { model: pruned, report } = surgery.prune(wasm.model);
    const x = tf.tensor(data.xs.values, data.xs.shape);
    const diff = (a, b) => tf.tidy(() => tf.max(tf.abs(tf.sub(a.predict(x), b.predict(x)))).dataSync()[0]);
    out.pruned = {
      filters: pruned.layers[0].getConfig().filters,
      compression: report.compression,
      maxDiff: diff(pruned, wasm.model),
    };

    await pruned.save(runtime.fileSystem(path.join(dir, 'model')));
    const loaded = await tfl.loadLayersModel(runtime.fileSystem(path.join(dir, 'model')));
    out.reload = { files: fs.readdirSync(path.join(dir, 'model')).sort(), maxDiff: diff(loaded, pruned) };
    x.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
