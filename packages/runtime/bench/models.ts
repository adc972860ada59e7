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
