// loadRunData directly (the CLI runs check no sizes, overlap or statistics): validation is capped
// at half the training images with a note, train and validation are disjoint and together the
// whole training set, and standardisation statistics are the training split's.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeStats, type Split } from '@normprune/datasets';
import { parseConfig } from '../src/index';
import { defaultCifarArchive, loadRunData } from '../src/data';
import { experimentCopy, writeIdxFixture } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-data-probe-'));
  writeIdxFixture(join(tmp, 'mnist'), 400, 100);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const images = (s: Split): string[] => {
  const per = s.shape[0] * s.shape[1] * s.shape[2];
  return Array.from({ length: s.count }, (_, i) =>
    Buffer.from(s.images.subarray(i * per, (i + 1) * per)).toString('hex'),
  );
};

async function load(validation: number, normalize: 'unit' | 'standardize' = 'unit') {
  const c = experimentCopy('lenet-5');
  c.dataset.validation = validation;
  c.dataset.normalize = normalize;
  return loadRunData(parseConfig(c), {}, { dataDir: join(tmp, 'mnist'), offline: true });
}

test('a validation split larger than half the training images is cut to half, and the run says so', async () => {
  const r = await load(300);
  expect(r.validation.count).toBe(200);
  expect(r.train.count).toBe(200);
  expect(r.notes.join('\n')).toMatch(
    /validation 300: at most half of the 400 training images are held out; using 200/,
  );
});

test('train and validation are disjoint and together every training image', async () => {
  const r = await load(50);
  expect([r.train.count, r.validation.count]).toEqual([350, 50]);
  const t = new Set(images(r.train));
  const v = images(r.validation);
  expect(v.filter((x) => t.has(x))).toEqual([]);
  expect(new Set([...t, ...v]).size).toBe(400);
});

test('standardisation statistics come from the training split alone', async () => {
  const r = await load(200, 'standardize');
  expect(r.stats).toEqual(computeStats(r.train));
  expect(r.stats).not.toEqual(
    computeStats({
      ...r.train,
      images: Buffer.concat([r.train.images, r.validation.images]),
      labels: new Uint8Array(400),
      count: 400,
    }),
  );
});

test('the CIFAR-10 archive of the workspace is found beside it, or beside a folder above it (audit 29)', () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'normprune-cifar-lookup-')));
  const cwd = process.cwd();
  try {
    const archive = join(root, 'shared', 'data', 'cifar-10-images.tar.gz');
    mkdirSync(join(root, 'shared', 'data'), { recursive: true });
    writeFileSync(archive, '');
    for (const ws of [join(root, 'main'), join(root, 'audits', 'a', 'repo')]) {
      mkdirSync(join(ws, 'apps'), { recursive: true });
      writeFileSync(join(ws, 'nx.json'), '{}');
      process.chdir(join(ws, 'apps'));
      expect(defaultCifarArchive()).toBe(archive);
    }
  } finally {
    process.chdir(cwd);
    rmSync(root, { recursive: true, force: true });
  }
});

test("the data set package's advice names --data-dir, the CLI's way to give a folder or archive, not its { dir } / { file } options", async () => {
  const idx = join(tmp, 'train-images-idx3-ubyte');
  writeFileSync(idx, Buffer.from([0, 0, 8, 3, 0, 0, 0, 1]));
  const zip = join(tmp, 'mnist.zip');
  writeFileSync(zip, Buffer.concat([Buffer.from([0x50, 0x4b, 3, 4]), Buffer.alloc(60)]));
  const cfg = parseConfig(experimentCopy('lenet-5'));
  for (const [file, advice] of [
    [
      idx,
      'this is an IDX file, not a tar archive: pass its folder as --data-dir (the folder holding the four IDX files)',
    ],
    [zip, 'unzip it and pass the folder as --data-dir, or repack it'],
  ]) {
    const e = await loadRunData(cfg, {}, { dataDir: file, offline: true }).catch((err: Error) => err);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toContain(advice);
    expect((e as Error).message).not.toMatch(/\{ (dir|file) \}/);
  }
});
