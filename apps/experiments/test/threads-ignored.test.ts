// --threads (or NORMPRUNE_THREADS) sets the wasm backend's threads: on cpu or node it used to be
// accepted and ignored without a word.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem, initBackend, type BackendInfo } from '@normprune/runtime';
import { ignoredThreadsNote } from '../src/pipeline';
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
  expect(r.err).toMatch(
    /note: --threads 2 sets the threads of the wasm backend only; the cpu backend ignores it/,
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
  expect(one.err).not.toMatch(/threads/);
});

test('ignoredThreadsNote: only more than one thread on a backend other than wasm, the variable first', () => {
  const info = (backend: string) => ({ backend }) as BackendInfo;
  const saved = process.env.NORMPRUNE_THREADS;
  delete process.env.NORMPRUNE_THREADS;
  try {
    expect(ignoredThreadsNote(2, info('wasm'))).toBeUndefined();
    expect(ignoredThreadsNote(undefined, info('node'))).toBeUndefined();
    expect(ignoredThreadsNote(1, info('cpu'))).toBeUndefined();
    expect(ignoredThreadsNote(4, info('node'))).toBe(
      '--threads 4 sets the threads of the wasm backend only; the node backend ignores it',
    );
    process.env.NORMPRUNE_THREADS = '3';
    expect(ignoredThreadsNote(undefined, info('cpu'))).toMatch(/^NORMPRUNE_THREADS=3 sets the threads/);
  } finally {
    if (saved === undefined) delete process.env.NORMPRUNE_THREADS;
    else process.env.NORMPRUNE_THREADS = saved;
  }
});
