// --threads (or NORMPRUNE_THREADS) sets the wasm backend's threads: on cpu or node it used to be
// accepted and ignored without a word.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { cli } from './helpers';

test('prune --backend cpu --threads 2 says that cpu ignores the threads', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'threads-ignored-'));
  await initBackend({ prefer: 'cpu', quiet: true });
  const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 2, name: 'd1' })] });
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const r = await cli([
    'prune',
    '--model',
    src,
    '--out',
    join(tmp, 'out'),
    '--backend',
    'cpu',
    '--threads',
    '2',
  ]);
  expect(r.code).toBe(0);
  // Said by @normprune/runtime (BackendInfo.notes), which knows who asked.
  expect(r.err).toContain(
    "note: 2 threads were asked for (by the threads option), but threads are the wasm backend's only: " +
      'the cpu backend ignores them and runs on one thread\n',
  );
  const one = await cli([
    'prune',
    '--model',
    src,
    '--out',
    join(tmp, 'out1'),
    '--backend',
    'cpu',
    '--threads',
    '1',
  ]);
  expect(one.code).toBe(0);
  // (stderr also holds prune's note on the plain model, whose path names this test's folder.)
  expect(one.err).not.toMatch(/threads were asked for|ignores them/);
});
