// Models the surgery benchmarks share.
import * as tfl from '@tensorflow/tfjs-layers';

const init = (seed: number) => tfl.initializers.glorotUniform({ seed });

/** The CIFAR VGG-16 with batch normalization (13 conv 3x3 + BN + ReLU, 512-wide classifier), seeded. */
export function vgg16bn(): tfl.LayersModel {
  const layers: tfl.layers.Layer[] = [];
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
  let n = 0;
  for (const c of cfg) {
    if (c === 'M') {
      layers.push(tfl.layers.maxPooling2d({ poolSize: 2 }));
      continue;
    }
    n++;
    layers.push(
      tfl.layers.conv2d({
        ...(n === 1 ? { inputShape: [32, 32, 3] } : {}),
        filters: c,
        kernelSize: 3,
        padding: 'same',
        name: `conv${n}`,
        kernelInitializer: init(n),
      }),
      tfl.layers.batchNormalization({ name: `bn${n}` }),
      tfl.layers.activation({ activation: 'relu', name: `relu${n}` }),
    );
  }
  layers.push(
    tfl.layers.flatten(),
    tfl.layers.dense({ units: 512, activation: 'relu', name: 'fc1', kernelInitializer: init(20) }),
    tfl.layers.dense({ units: 10, name: 'fc2', kernelInitializer: init(21) }),
  );
  return tfl.sequential({ layers });
}
