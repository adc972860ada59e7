// eval of a model whose output has another number of units than any data set has classes (a
// 1-unit sigmoid, a 2-class head) told the user to give "the experiment (or config) the model was
// trained for (one on mnist or fashion-mnist)", the experiments its input fits; every one of them
// has 10 classes, so no experiment could fit it. It says so, and what eval measures.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { cli } from './helpers';

const save = async (dir: string, units: number, activation: 'sigmoid' | 'softmax'): Promise<string> => {
  const m = tfl.sequential({
    layers: [tfl.layers.flatten({ inputShape: [28, 28, 1] }), tfl.layers.dense({ units, activation })],
  });
  await m.save(fileSystem(dir));
  m.dispose();
  return dir;
};

test.each([
  [1, 'sigmoid' as const],
  [2, 'softmax' as const],
])(
  'eval of a [28,28,1] model with %i output unit(s) says no experiment fits its output, not which to give',
  async (units, activation) => {
    await initBackend({ prefer: 'cpu', quiet: true });
    const tmp = mkdtempSync(join(tmpdir(), 'eval-classes-'));
    const dir = await save(join(tmp, 'model'), units, activation);
    const r = await cli([
      'eval',
      '--model',
      dir,
      '--experiment',
      'lenet-5',
      '--budget',
      'testSubset=64',
      '--backend',
      'cpu',
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `normprune: error: eval: ${dir} outputs [${units}] but lenet-5's mnist has 10 classes; ` +
        `its output [${units}] fits no normprune experiment, whatever the data set: each has 10 classes ` +
        '(mnist: 10, fashion-mnist: 10, cifar10: 10), and eval measures a classifier whose output is one ' +
        'score per class (the logits or softmax of a last Dense layer of 10 units)\n',
    );
    expect(r.err).not.toMatch(/give the experiment/);
  },
);

test('a 10-class model of the same input is measured', async () => {
  await initBackend({ prefer: 'cpu', quiet: true });
  const tmp = mkdtempSync(join(tmpdir(), 'eval-classes-'));
  const dir = await save(join(tmp, 'model'), 10, 'softmax');
  const r = await cli([
    'eval',
    '--model',
    dir,
    '--experiment',
    'lenet-5',
    '--budget',
    'testSubset=64',
    '--backend',
    'cpu',
  ]);
  expect(r.code).toBe(0);
  // 784 x 10 weights + 10 biases (zeros, as initialised, so not counted non-zero); 784 x 10 MACs.
  expect(r.out).toMatch(/\| 7,850 +\| 7,840 +\| 7,840 +\|/);
});
