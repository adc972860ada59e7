// A config's prune.keep / prune.keepFilters of 0 removes a whole layer of the sequential model:
// the run trained the baseline and the proximal phase, then surgery refused the model, blaming
// the L1 penalty. The config check refuses it before anything runs.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense } from '@normprune/layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { cli, writeVariant } from './helpers';

test.each([
  ['keep', 'lenet-500-300', { keep: { dense1: 0 } }, /prune\.keep\.dense1: 0 would remove the whole layer/],
  [
    'keepFilters',
    'lenet-5',
    { keepFilters: { conv2: 0 } },
    /prune\.keepFilters\.conv2: 0 would remove the whole layer/,
  ],
])('prune.%s of 0 is a config error (exit 2)', async (_field, base, prune, message) => {
  const tmp = mkdtempSync(join(tmpdir(), 'keep-zero-'));
  const file = writeVariant(tmp, 'zero', (cfg) => (cfg.prune = prune), base);
  const r = await cli(['train', '--config', file, '--print-config']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(message);
  // 1 is fine.
  const one = writeVariant(
    tmp,
    'one',
    (cfg) => (cfg.prune = JSON.parse(JSON.stringify(prune).replace(':0', ':1'))),
    base,
  );
  expect((await cli(['train', '--config', one, '--print-config'])).code).toBe(0);
});

test('prune --keep LAYER=0 that leaves a layer no unit is said as the flag doing it (exit 2), not as the L1 penalty', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'keep-zero-'));
  await initBackend({ prefer: 'cpu', quiet: true });
  const model = tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [6], units: 4, name: 'dense1', activation: 'relu' }),
      decomposedDense({ units: 3, name: 'dense2', activation: 'softmax' }),
    ],
  });
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', '--keep', 'dense1=0']);
  expect(r.code).toBe(2);
  expect(r.err).toBe(
    "normprune: --keep dense1=0 leaves layer dense1 no unit: the model's output no longer depends on its input, " +
      "and removing them would disconnect the model (layers left without a live unit: 'dense1'); keep at least 1\n",
  );
  expect(existsSync(out)).toBe(false);
  // 1 prunes.
  const one = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', '--keep', 'dense1=1']);
  expect(one.code).toBe(0);
});

test.each([
  ['--keep', 'dense1=2', "'output' for a Dense layer's neurons"],
  ['--keep-filters', 'dense1=2', "'kernel' for a Conv2D layer"],
])(
  'prune %s on a model without decomposed layers says how to get groups to keep (exit 2)',
  async (flag, value, granularity) => {
    const tmp = mkdtempSync(join(tmpdir(), 'keep-plain-'));
    await initBackend({ prefer: 'cpu', quiet: true });
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [6], units: 4, name: 'dense1', activation: 'relu' }),
        tfl.layers.dense({ units: 3, name: 'dense2' }),
      ],
    });
    const src = join(tmp, 'model');
    await model.save(fileSystem(src));
    model.dispose();
    const out = join(tmp, 'out');
    const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', flag, value]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `normprune: ${flag}: ${src} has no decomposed layers, so no groups to keep; decompose the model first ` +
        `(decompose() of @normprune/layers, granularity ${granularity}, then save it) and prune that, ` +
        'or give --threshold T alone, which on a plain model zeroes weights with |w| <= T\n',
    );
    expect(existsSync(out)).toBe(false);
  },
);
