// `file://` strings in model.save / loadLayersModel, routed to fileSystem by
// the routers that importing the package registers (src/file-url.ts).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fileSystem, makeDirs, ModelFileError } from '../src/index.js';
import { registerFileUrlRouters } from '../src/file-url.js';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks.js';

/** A fresh copy of a module inside `jest.isolateModules` (which only `require` honours). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fresh = <T = unknown>(id: string): T => require(id) as T;

let root: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-file-url-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

let counter = 0;
function freshDir(): string {
  return path.join(root, `m${counter++}`);
}

function model(seed: number): tfl.Sequential {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [4], units: 5, activation: 'relu', kernelInitializer: init(seed) }),
      tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(seed + 1) }),
    ],
  });
}

async function outputs(m: tfl.LayersModel): Promise<Float32Array> {
  const y = tf.tidy(() => m.predict(tf.randomNormal([6, 4], 0, 1, 'float32', 7)) as tf.Tensor);
  const data = (await y.data()) as Float32Array;
  y.dispose();
  return data;
}

async function expectSameOutputs(a: tfl.LayersModel, b: tfl.LayersModel): Promise<void> {
  const [ya, yb] = [await outputs(a), await outputs(b)];
  expect(ya.length).toBe(18);
  expect(maxDiff(ya, yb).abs).toBeLessThanOrEqual(1e-6);
}

/** The error `fn` throws or rejects with. */
async function errorOf(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

/**
 * A `file://` router standing in for tfjs-node's (which cannot be installed
 * here): registered with tfjs like tfjs-node's, it takes every `file://`
 * string while `active`. tfjs has no way to unregister a router.
 */
const fake = { active: false, saved: [] as string[] };
function fakeRouter(url: string | string[]): tf.io.IOHandler {
  if (!fake.active || typeof url !== 'string' || !url.startsWith('file://')) return null as never;
  return {
    save: async (artifacts) => {
      fake.saved.push(url);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    load: async () => {
      throw new Error(`fake tfjs-node: load ${url}`);
    },
  };
}
tf.io.registerSaveRouter(fakeRouter);
tf.io.registerLoadRouter(fakeRouter);

afterEach(() => {
  fake.active = false;
  fake.saved = [];
});

describe('file:// strings without tfjs-node', () => {
  it('model.save(file://dir) then loadLayersModel(file://dir/model.json) round-trips, without leaking', async () => {
    const dir = freshDir();
    const m = model(1);
    await expectNoLeak(async () => {
      const result = await m.save(pathToFileURL(dir).href);
      expect(result.modelArtifactsInfo.weightDataBytes).toBe((4 * 5 + 5 + 5 * 3 + 3) * 4);
      expect(fs.readdirSync(dir).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
      const loaded = await tfl.loadLayersModel(pathToFileURL(path.join(dir, 'model.json')).href);
      await expectSameOutputs(m, loaded);
      // The folder itself loads too (tfjs-node insists on the model.json).
      const again = await tfl.loadLayersModel(`file://${dir}`);
      await expectSameOutputs(m, again);
      loaded.dispose();
      again.dispose();
    });
    m.dispose();
  });

  it("takes tfjs-node's relative forms, file://./dir and file://dir, from the working directory", async () => {
    const dir = freshDir();
    makeDirs(dir);
    const cwd = process.cwd();
    const m = model(2);
    try {
      process.chdir(dir);
      await m.save('file://./rel');
      await m.save('file://bare');
      expect(fs.existsSync(path.join(dir, 'rel', 'model.json'))).toBe(true);
      expect(fs.existsSync(path.join(dir, 'bare', 'model.json'))).toBe(true);
      const loaded = await tfl.loadLayersModel('file://./rel/model.json');
      await expectSameOutputs(m, loaded);
      loaded.dispose();
    } finally {
      process.chdir(cwd);
    }
    m.dispose();
  });

  it('routes only file:// strings: plain paths and other schemes are left to tfjs', () => {
    expect(tf.io.getSaveHandlers('file:///models/m')).toHaveLength(1);
    expect(tf.io.getLoadHandlers('file:///models/m/model.json')).toHaveLength(1);
    for (const url of ['/models/m', 'models/m', 'FILE:///models/m', 'indexeddb://m']) {
      expect(tf.io.getSaveHandlers(url)).toHaveLength(0);
      expect(tf.io.getLoadHandlers(url)).toHaveLength(0);
    }
    // tfjs's own http router, alone.
    expect(tf.io.getLoadHandlers('https://example.com/m/model.json')).toHaveLength(1);
  });

  it('takes the rest of a routed string as the path, literally, as tfjs-node does: #, ? and % are characters of it', async () => {
    const dir = freshDir();
    const m = model(3);
    const names = ['run#1', 'run#2', 'run?v=3', 'my%20dir', '100%'];
    for (const name of names) await m.save(`file://${dir}/${name}`);
    // Five folders of their own names; fileSystem given the URL would decode it (run#1 -> run).
    expect(fs.readdirSync(dir).sort()).toEqual([...names].sort());
    for (const name of names) {
      const loaded = await tfl.loadLayersModel(`file://${dir}/${name}/model.json`);
      await expectSameOutputs(m, loaded);
      loaded.dispose();
    }
    // fileSystem itself still reads a file:// URL as a URL (pathToFileURL's encoding).
    const encoded = freshDir();
    await m.save(fileSystem(`file://${encoded}/a%20b`));
    expect(fs.existsSync(path.join(encoded, 'a b', 'model.json'))).toBe(true);
    m.dispose();
  });

  it("gives fileSystem's errors: a bare file:// names no path, nothing saved there", async () => {
    const m = model(3);
    for (const url of ['file://']) {
      const direct = await errorOf(() => fileSystem(url));
      const viaSave = await errorOf(() => m.save(url));
      const viaLoad = await errorOf(() => tfl.loadLayersModel(url));
      for (const e of [viaSave, viaLoad]) {
        expect(e).toBeInstanceOf(ModelFileError);
        expect(e).toMatchObject({ code: 'invalid-argument', message: direct.message });
      }
    }
    const missing = freshDir();
    const e = await errorOf(() => tfl.loadLayersModel(`file://${missing}/model.json`));
    expect(e).toMatchObject({ code: 'missing' });
    expect(e.message).toBe(`Cannot load model: the directory ${missing} does not exist`);
    m.dispose();
  });

  it('a list of one file:// URL is that URL; a longer one (a GraphDef for tfjs-node) is refused clearly', async () => {
    const dir = freshDir();
    const m = model(4);
    await m.save(`file://${dir}`);
    const [handler] = tf.io.getLoadHandlers([`file://${dir}/model.json`]);
    const loaded = await tfl.loadLayersModel(handler);
    await expectSameOutputs(m, loaded);
    loaded.dispose();
    const urls = [`file://${dir}/model.pb`, `file://${dir}/weights_manifest.json`];
    const e = await errorOf(() => tf.io.getLoadHandlers(urls));
    expect(e).toMatchObject({ code: 'unsupported' });
    expect(e.message).toContain("tfjs-node's form for a binary GraphDef model");
    // Not all file://: not ours.
    expect(tf.io.getLoadHandlers([`file://${dir}/model.json`, 'https://x/w.json'])).toHaveLength(0);
    m.dispose();
  });

  it('tf.io.copyModel copies between file:// URLs; moveModel and removeModel fail before touching the files', async () => {
    const [src, dst, moved] = [freshDir(), freshDir(), freshDir()];
    const m = model(5);
    await m.save(`file://${src}`);
    await tf.io.copyModel(`file://${src}`, `file://${dst}`);
    const copy = await tfl.loadLayersModel(`file://${dst}/model.json`);
    await expectSameOutputs(m, copy);
    copy.dispose();
    // tfjs needs a model store manager for these; none is registered for file://.
    await expect(tf.io.moveModel(`file://${src}`, `file://${moved}`)).rejects.toThrow(
      "Cannot find model manager for scheme 'file'",
    );
    await expect(tf.io.removeModel(`file://${src}`)).rejects.toThrow(
      "Cannot find model manager for scheme 'file'",
    );
    expect(fs.readdirSync(src).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
    expect(fs.existsSync(moved)).toBe(false);
    expect(await tf.io.listModels()).toEqual({});
    m.dispose();
  });
});

describe('file:// routers next to tfjs-node', () => {
  it("steps aside when another router takes file:// (tfjs-node's, registered after this package)", async () => {
    const dir = freshDir();
    const m = model(6);
    fake.active = true;
    // Without stepping aside tfjs would throw "Found more than one (2) save handlers".
    expect(tf.io.getSaveHandlers(`file://${dir}`)).toHaveLength(1);
    await m.save(`file://${dir}`);
    expect(fake.saved).toEqual([`file://${dir}`]);
    expect(fs.existsSync(dir)).toBe(false);
    await expect(tfl.loadLayersModel(`file://${dir}/model.json`)).rejects.toThrow(
      `fake tfjs-node: load file://${dir}/model.json`,
    );
    // Decided at every call: with the other router gone quiet, ours serves again.
    fake.active = false;
    await m.save(`file://${dir}`);
    expect(fs.existsSync(path.join(dir, 'model.json'))).toBe(true);
    m.dispose();
  });

  it('steps aside as well when the other router was registered first', async () => {
    let tfFresh!: typeof tf;
    jest.isolateModules(() => {
      // A fresh tfjs-core, with its own empty router registry.
      tfFresh = fresh<typeof tf>('@tensorflow/tfjs-core');
      expect(tfFresh.io.getSaveHandlers('file:///m')).toHaveLength(0);
      tfFresh.io.registerSaveRouter(fakeRouter);
      tfFresh.io.registerLoadRouter(fakeRouter);
      fresh('../src/index.js');
    });
    const url = `file://${freshDir()}`;
    fake.active = true;
    const [save, ...more] = tfFresh.io.getSaveHandlers(url);
    expect(more).toHaveLength(0);
    await save.save!({ modelTopology: {}, weightSpecs: [], weightData: new ArrayBuffer(0) });
    expect(fake.saved).toEqual([url]);
    expect(tfFresh.io.getLoadHandlers(`${url}/model.json`)).toHaveLength(1);
    // The fake quiet: the one handler is ours.
    fake.active = false;
    const [load, ...others] = tfFresh.io.getLoadHandlers(`${url}/model.json`);
    expect(others).toHaveLength(0);
    await expect(load.load!()).rejects.toMatchObject({ code: 'missing' });
  });
});

describe('registered once per process', () => {
  it('registering again, or a second copy of the module (the other build), adds no router', async () => {
    registerFileUrlRouters();
    jest.isolateModules(() => {
      // A second copy of src/file-url.ts with the same tfjs-core, as when the
      // CommonJS and the ES module builds are both loaded (pack.test.ts runs the real ones).
      jest.doMock('@tensorflow/tfjs-core', () => tf);
      const copy = fresh<typeof import('../src/file-url.js')>('../src/file-url.js');
      expect(copy.registerFileUrlRouters).not.toBe(registerFileUrlRouters);
      copy.registerFileUrlRouters();
      jest.dontMock('@tensorflow/tfjs-core');
    });
    expect(tf.io.getSaveHandlers('file:///m')).toHaveLength(1);
    expect(tf.io.getLoadHandlers('file:///m/model.json')).toHaveLength(1);
    const dir = freshDir();
    const m = model(7);
    await m.save(`file://${dir}`);
    const loaded = await tfl.loadLayersModel(`file://${dir}/model.json`);
    await expectSameOutputs(m, loaded);
    loaded.dispose();
    m.dispose();
  });

  it('another copy of tfjs-core gets its own routers', () => {
    jest.isolateModules(() => {
      const tfFresh = fresh<typeof tf>('@tensorflow/tfjs-core');
      fresh<typeof import('../src/file-url.js')>('../src/file-url.js').registerFileUrlRouters();
      expect(tfFresh.io.getSaveHandlers('file:///m')).toHaveLength(1);
    });
  });

  it('the browser entry registers none', () => {
    jest.isolateModules(() => {
      const tfFresh = fresh<typeof tf>('@tensorflow/tfjs-core');
      const browser = fresh<typeof import('../src/browser.js')>('../src/browser.js');
      expect(typeof browser.fileSystem).toBe('function');
      expect(tfFresh.io.getSaveHandlers('file:///m')).toHaveLength(0);
      expect(tfFresh.io.getLoadHandlers('file:///m/model.json')).toHaveLength(0);
    });
  });
});
