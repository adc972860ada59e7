// The two benchmark networks, as tfjs-layers users would write them.
import * as tfl from '@tensorflow/tfjs-layers';

/** The models the benchmark trains. */
export type ModelName = 'LeNet-500-300' | 'LeNet-5';

/** Builds and compiles a model (SGD, categorical cross-entropy). */
export function buildModel(name: ModelName, learningRate = 0.01): tfl.LayersModel {
  const model = tfl.sequential();
  if (name === 'LeNet-500-300') {
    model.add(tfl.layers.flatten({ inputShape: [28, 28, 1] }));
    model.add(tfl.layers.dense({ units: 500, activation: 'relu' }));
    model.add(tfl.layers.dense({ units: 300, activation: 'relu' }));
    model.add(tfl.layers.dense({ units: 10, activation: 'softmax' }));
  } else {
    model.add(tfl.layers.conv2d({ inputShape: [28, 28, 1], filters: 20, kernelSize: 5, activation: 'relu' }));
    model.add(tfl.layers.maxPooling2d({ poolSize: 2, strides: 2 }));
    model.add(tfl.layers.conv2d({ filters: 50, kernelSize: 5, activation: 'relu' }));
    model.add(tfl.layers.maxPooling2d({ poolSize: 2, strides: 2 }));
    model.add(tfl.layers.flatten());
    model.add(tfl.layers.dense({ units: 500, activation: 'relu' }));
    model.add(tfl.layers.dense({ units: 10, activation: 'softmax' }));
  }
  model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' });
  (model.optimizer as unknown as { learningRate: number }).learningRate = learningRate;
  return model;
}

/** The CIFAR VGG-16 with batch normalization, filters scaled by `width`. */
export function vgg16bn(width: number): tfl.LayersModel {
  const cfg = [
    64,
    64,
    'M',
    128,
    128,
    'M',
    256,
    256,
    256,
    'M',
    512,
    512,
    512,
    'M',
    512,
    512,
    512,
    'M',
  ] as const;
  const model = tfl.sequential();
  let n = 0;
  for (const c of cfg) {
    if (c === 'M') {
      model.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
      continue;
    }
    n++;
    model.add(
      tfl.layers.conv2d({
        ...(n === 1 ? { inputShape: [32, 32, 3] } : {}),
        filters: Math.max(1, Math.round(c * width)),
        kernelSize: 3,
        padding: 'same',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: n }),
      }),
    );
    model.add(tfl.layers.batchNormalization());
    model.add(tfl.layers.activation({ activation: 'relu' }));
  }
  model.add(tfl.layers.flatten());
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  model.add(
    tfl.layers.dense({ units: Math.round(512 * width), activation: 'relu', kernelInitializer: init(20) }),
  );
  model.add(tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(21) }));
  return model;
}
