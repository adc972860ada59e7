// The browser build's loadSparseModel (src/browser.ts) against Node's: sparse
// exports written by exportModel are served by an injected fetch, and the
// model fetched must be Node's loadSparseModel's of the same folder, bit for
// bit, with the same errors (naming URLs instead of paths).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportModel, loadSparseModel, ModelFileError, prune } from '../src/index';
import { loadSparseModel as loadInBrowser } from '../src/browser';
import { maxDiff } from '../../../tools/testing/leaks';
import { fillAll, lenet5, mlp, rng, zeroKernelWhere, zeroUnits } from './helpers';

// Required, not imported, so that jest.spyOn can replace its functions.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fs: typeof import('node:fs') = require('node:fs');

const ORIGIN = 'http://models.test';
let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-browser-load-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Served {
  fetchFunc: (url: string, init?: RequestInit) => Promise<Response>;
  /** Every request, in order. */
  requests: { url: string; init?: RequestInit }[];
}

/**
 * A fetch serving `${ORIGIN}/<folder>/<file>` from `tmp/<folder>/<file>` (its bytes read when the
 * request comes, so a test may damage them first), and 404 otherwise; `status` overrides the
 * answer for a file name.
 */
function serve(status: Record<string, number> = {}): Served {
  const requests: Served['requests'] = [];
  const fetchFunc = async (url: string, init?: RequestInit) => {
    requests.push({ url, init });
    const u = new URL(url);
    const name = path.posix.basename(u.pathname);
    if (status[name] !== undefined)
      return new Response('refused', {
        status: status[name],
        statusText: status[name] === 403 ? 'Forbidden' : '',
      });
    const file = path.join(tmp, ...u.pathname.split('/').map(decodeURIComponent));
    if (u.origin !== ORIGIN || !file.startsWith(tmp + path.sep) || !fs.existsSync(file))
      return new Response('not found', { status: 404, statusText: 'Not Found' });
    return new Response(fs.readFileSync(file));
  };
  return { fetchFunc, requests };
}

/** Weights as bytes (bit-identical, NaN-safe), with their names. */
function weightBytes(model: tfl.LayersModel): [string, number[], Uint8Array][] {
  const tensors = model.getWeights();
  return model.weights.map((w, i) => [
    w.originalName,
    tensors[i].shape,
    new Uint8Array((tensors[i].dataSync() as Float32Array).slice().buffer),
  ]);
}

function predict(model: tfl.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

function denseMlp(): tfl.LayersModel {
  const m = mlp();
  const r = rng(3);
  fillAll(m, 'bias', () => r() - 0.5);
  zeroUnits(m, 'd1', [0, 2, 5]);
  zeroKernelWhere(m, 'd2', (i, o) => (i * 3 + o) % 4 === 0);
  return prune(m).model;
}

function deadKernelConv(): tfl.LayersModel {
  const m = lenet5(true);
  const r = rng(9);
  fillAll(m, 'bias', () => r() - 0.5);
  zeroUnits(m, 'conv2', [0, 3]);
  zeroKernelWhere(m, 'conv2', (i, o) => (i * 7 + o * 3) % 5 < 3);
  zeroKernelWhere(m, 'fc1', (i, o) => (i + 2 * o) % 5 !== 0);
  return prune(m).model;
}

const MODELS: [string, () => tfl.LayersModel][] = [
  ['a dense MLP', denseMlp],
  ['a conv net with dead 2-D kernels', deadKernelConv],
];

describe.each(MODELS)('%s', (name, build) => {
  const folder = name.replace(/\W+/g, '-');
  let model: tfl.LayersModel;
  let x: tf.Tensor;

  beforeAll(() => {
    model = build();
    x = tf.randomNormal(
      model.inputs[0].shape.map((d) => d ?? 3),
      0,
      1,
      'float32',
      11,
    );
  });
  afterAll(() => {
    model.dispose();
    x.dispose();
  });

  it.each([
    ['float32', false],
    ['float16', true],
  ])('fetched (%s) is the model Node loads from the folder, bit for bit', async (_, float16) => {
    const dir = path.join(tmp, `${folder}-${float16 ? 'f16' : 'f32'}`);
    await exportModel(model, dir, { format: 'sparse', float16 });
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'sparse.json'), 'utf8'));
    const encodings = new Set(manifest.weights.map((w: { encoding: string }) => w.encoding));
    // Both encodings are read back, in the value type asked for.
    expect([...encodings].sort()).toEqual(['bitmask', 'dense']);
    expect(new Set(manifest.weights.map((w: { valueDtype: string }) => w.valueDtype))).toEqual(
      new Set([float16 ? 'float16' : 'float32']),
    );
    const baseline = tf.memory().numTensors;
    const node = await loadSparseModel(dir);
    const { fetchFunc, requests } = serve();
    const readFile = jest.spyOn(fs.promises, 'readFile');
    const readFileSync = jest.spyOn(fs, 'readFileSync');
    let browser: tfl.LayersModel;
    try {
      browser = await loadInBrowser(`${ORIGIN}/${path.basename(dir)}/model.json`, { fetchFunc });
      // The files came through fetch, never from the file system (only the test's server read them).
      expect(readFile).not.toHaveBeenCalled();
      expect(readFileSync.mock.calls.map((c) => path.basename(String(c[0])))).toEqual([
        'model.json',
        'sparse.json',
        'sparse.bin',
      ]);
    } finally {
      readFile.mockRestore();
      readFileSync.mockRestore();
    }
    expect(requests.map((r) => r.url)).toEqual(
      ['model.json', 'sparse.json', 'sparse.bin'].map((f) => `${ORIGIN}/${path.basename(dir)}/${f}`),
    );
    expect(browser.toJSON(null, false)).toEqual(node.toJSON(null, false));
    expect(weightBytes(browser)).toEqual(weightBytes(node));
    // float32 keeps the model's own weights exactly; float16 rounds them the same way in both.
    if (!float16) expect(weightBytes(browser)).toEqual(weightBytes(model));
    const [pb, pn, pm] = [predict(browser, x), predict(node, x), predict(model, x)];
    expect(maxDiff(pb, pn).abs).toBeLessThanOrEqual(1e-6);
    if (!float16) expect(maxDiff(pb, pm).abs).toBeLessThanOrEqual(1e-6);
    else expect(maxDiff(pb, pm).rel).toBeLessThan(0.05);
    browser.dispose();
    node.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

describe('loadSparseModel in the browser build: URLs', () => {
  let model: tfl.LayersModel;
  let reference: Uint8Array[];
  const folder = 'urls';

  beforeAll(async () => {
    model = denseMlp();
    await exportModel(model, path.join(tmp, folder), { format: 'sparse' });
    reference = weightBytes(model).map(([, , b]) => b);
  });
  afterAll(() => model.dispose());

  async function loadsFrom(url: string, options: Parameters<typeof loadInBrowser>[1] = {}) {
    const served = serve();
    const m = await loadInBrowser(url, { fetchFunc: served.fetchFunc, ...options });
    expect(weightBytes(m).map(([, , b]) => b)).toEqual(reference);
    m.dispose();
    return served.requests;
  }

  it.each([
    [`${ORIGIN}/${folder}/model.json`],
    [`${ORIGIN}/${folder}/`],
    [`${ORIGIN}/${folder}`],
    [`${ORIGIN}/${folder}/#top`],
  ])('takes the URL of model.json or of its folder (%s)', async (url) => {
    const requests = await loadsFrom(url);
    expect(requests.map((r) => r.url)).toEqual(
      ['model.json', 'sparse.json', 'sparse.bin'].map((f) => `${ORIGIN}/${folder}/${f}`),
    );
  });

  it("passes requestInit to every request and keeps model.json's query string, as tfjs does for weights", async () => {
    const requestInit: RequestInit = { headers: { Authorization: 'Bearer t0k3n' }, credentials: 'include' };
    const requests = await loadsFrom(`${ORIGIN}/${folder}/model.json?sig=abc&v=2`, { requestInit });
    expect(requests.map((r) => r.url)).toEqual(
      ['model.json', 'sparse.json', 'sparse.bin'].map((f) => `${ORIGIN}/${folder}/${f}?sig=abc&v=2`),
    );
    for (const r of requests) expect(r.init).toBe(requestInit);
  });

  it("resolves a relative URL against the page's location, and refuses one where there is none", async () => {
    const g = globalThis as { location?: unknown };
    g.location = { href: `${ORIGIN}/app/index.html` };
    try {
      expect((await loadsFrom(`../${folder}/model.json`)).map((r) => r.url)[2]).toBe(
        `${ORIGIN}/${folder}/sparse.bin`,
      );
      expect((await loadsFrom(`/${folder}/`)).map((r) => r.url)[0]).toBe(`${ORIGIN}/${folder}/model.json`);
    } finally {
      delete g.location;
    }
    const err = await loadInBrowser(`/${folder}/model.json`, { fetchFunc: serve().fetchFunc }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code: 'invalid-argument' });
    expect((err as Error).message).toBe(
      `loadSparseModel: '/${folder}/model.json' is not a URL (a relative URL needs a page to resolve it against)`,
    );
  });

  it('uses the global fetch without a fetchFunc', async () => {
    const { fetchFunc } = serve();
    const spy = jest
      .spyOn(globalThis, 'fetch')
      .mockImplementation(((url: string, init?: RequestInit) => fetchFunc(url, init)) as typeof fetch);
    try {
      const m = await loadInBrowser(`${ORIGIN}/${folder}/`);
      expect(weightBytes(m).map(([, , b]) => b)).toEqual(reference);
      m.dispose();
      expect(spy).toHaveBeenCalledTimes(3);
    } finally {
      spy.mockRestore();
    }
  });

  it("Node's loadSparseModel fetches an http(s) URL the same way", async () => {
    const { fetchFunc, requests } = serve();
    const m = await loadSparseModel(`${ORIGIN}/${folder}/model.json`, { fetchFunc });
    expect(weightBytes(m).map(([, , b]) => b)).toEqual(reference);
    m.dispose();
    expect(requests.map((r) => r.url)).toEqual(
      ['model.json', 'sparse.json', 'sparse.bin'].map((f) => `${ORIGIN}/${folder}/${f}`),
    );
  });

  it.each<[string, unknown, unknown, string]>([
    ['a number', 42, {}, "url must be the URL of a sparse export's model.json or of its folder, got 42"],
    ['an empty string', '', {}, "url must be the URL of a sparse export's model.json or of its folder, got"],
    [
      'an indexeddb:// URL',
      'indexeddb://pruned',
      {},
      "'indexeddb://pruned' is a indexeddb: URL; a sparse export is loaded over http: or https:",
    ],
    ['a file:// URL', 'file:///models/x/', {}, "'file:///models/x/' is a file: URL"],
    ['options that are a string', `${ORIGIN}/${folder}/`, 'x', 'options must be an object such as'],
  ])('refuses %s, before any request', async (_, url, options, message) => {
    const { fetchFunc, requests } = serve();
    const err = await loadInBrowser(
      url as string,
      typeof options === 'object' ? { ...(options as object), fetchFunc } : (options as never),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code: 'invalid-argument' });
    expect((err as Error).message).toContain(`loadSparseModel: ${message}`);
    expect(requests).toEqual([]);
  });
});

describe('loadSparseModel in the browser build: errors', () => {
  // A Dense kernel [4, 6] with every other weight dead (stored 'bitmask'), and its bias ('dense').
  const folder = 'damaged';
  let dir: string;
  let files: Record<'model' | 'manifest' | 'bin', string>;
  let saved: Record<string, Buffer>;
  let model: tfl.Sequential;
  const url = `${ORIGIN}/${folder}/model.json`;
  const urlOf = (f: string) => `${ORIGIN}/${folder}/${f}`;

  beforeAll(async () => {
    model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 6, name: 'd' })] });
    zeroKernelWhere(model, 'd', (i, o) => (i + o) % 2 === 0);
    dir = path.join(tmp, folder);
    await exportModel(model, dir, { format: 'sparse' });
    files = {
      model: path.join(dir, 'model.json'),
      manifest: path.join(dir, 'sparse.json'),
      bin: path.join(dir, 'sparse.bin'),
    };
    saved = Object.fromEntries(Object.values(files).map((f) => [f, fs.readFileSync(f)]));
  });
  afterAll(() => model.dispose());
  afterEach(() => {
    for (const [f, bytes] of Object.entries(saved)) fs.writeFileSync(f, bytes);
  });

  const manifest = () => JSON.parse(saved[files.manifest].toString('utf8'));
  const modelJson = () => JSON.parse(saved[files.model].toString('utf8'));
  const edit = (i: number, change: Record<string, unknown>) => {
    const m = manifest();
    m.weights[i] = { ...m.weights[i], ...change };
    return JSON.stringify(m);
  };

  /** The error of each loader on the folder as it is now, with the Node one's paths written as URLs. */
  async function bothErrors(): Promise<{ node: ModelFileError; browser: ModelFileError }> {
    const baseline = tf.memory().numTensors;
    const node = (await loadSparseModel(dir).catch((e: unknown) => e)) as ModelFileError;
    const browser = (await loadInBrowser(url, { fetchFunc: serve().fetchFunc }).catch(
      (e: unknown) => e,
    )) as ModelFileError;
    expect(node).toBeInstanceOf(ModelFileError);
    expect(browser).toBeInstanceOf(ModelFileError);
    // Nothing stays allocated, not even for weights that do not fit the topology, where the
    // model is built before its weights are refused.
    expect(tf.memory().numTensors).toBe(baseline);
    return { node, browser };
  }

  const asUrls = (text: string) =>
    text
      .split(dir + path.sep)
      .join(`${ORIGIN}/${folder}/`)
      .split(`not a file in ${dir}`)
      .join(`not a file in ${ORIGIN}/${folder}/`)
      .replace(
        'tfl.loadLayersModel(fileSystem(dir)) from @normprune/runtime',
        'tfl.loadLayersModel(url) of @tensorflow/tfjs-layers',
      );

  it.each<[string, 'model' | 'manifest' | 'bin', () => string | Buffer, string]>([
    ['an unknown format', 'manifest', () => JSON.stringify({ ...manifest(), format: 'other' }), 'damaged'],
    ['an unknown version', 'manifest', () => JSON.stringify({ ...manifest(), version: 0 }), 'damaged'],
    ['a later version', 'manifest', () => JSON.stringify({ ...manifest(), version: 2 }), 'unsupported'],
    ['a manifest that is not JSON', 'manifest', () => '{"format": "normprune-sparse", ', 'damaged'],
    ['a model.json that is not JSON', 'model', () => '{"modelTopology": ', 'damaged'],
    ['a model.json without modelTopology', 'model', () => '{"weightsManifest": []}', 'damaged'],
    ['a truncated sparse.bin', 'bin', () => saved[files.bin].subarray(0, 50), 'damaged'],
    ['an empty sparse.bin', 'bin', () => Buffer.alloc(0), 'damaged'],
    ['an offset past the end of sparse.bin', 'manifest', () => edit(1, { offset: 1000 }), 'damaged'],
    ['a bitmask with more set bits than values', 'manifest', () => edit(0, { values: 11 }), 'damaged'],
    ['a bitmask with fewer set bits than values', 'manifest', () => edit(0, { values: 13 }), 'damaged'],
    ['a bitmask of the wrong size', 'manifest', () => edit(0, { maskBytes: 2 }), 'damaged'],
    ['an unknown encoding', 'manifest', () => edit(1, { encoding: 'rle' }), 'damaged'],
    ['an unknown value type', 'manifest', () => edit(1, { valueDtype: 'int8' }), 'damaged'],
    ['a huge shape', 'manifest', () => edit(0, { shape: [1e6, 1e6, 4, 6] }), 'damaged'],
    ['a repeated name', 'manifest', () => edit(1, { name: 'd/kernel' }), 'damaged'],
    ['a weight the topology lacks', 'manifest', () => edit(0, { name: 'other' }), 'damaged'],
    [
      'a data file outside the folder',
      'manifest',
      () => JSON.stringify({ ...manifest(), data: '../x.bin' }),
      'unsafe-path',
    ],
    [
      'a data file at the root',
      'manifest',
      () => JSON.stringify({ ...manifest(), data: '/etc/passwd' }),
      'unsafe-path',
    ],
    [
      'a data file named by a number',
      'manifest',
      () => JSON.stringify({ ...manifest(), data: 7 }),
      'unsafe-path',
    ],
    [
      'a sparseManifest outside the folder',
      'model',
      () => JSON.stringify({ ...modelJson(), sparseManifest: 'sub/../../x.json' }),
      'unsafe-path',
    ],
    [
      "a 'tfjs' export",
      'model',
      () =>
        JSON.stringify({
          ...modelJson(),
          weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: [] }],
        }),
      'unsupported',
    ],
  ])('%s: the error Node gives, naming the URL', async (_name, which, damage, code) => {
    fs.writeFileSync(files[which], damage());
    const { node, browser } = await bothErrors();
    expect(node.code).toBe(code);
    expect(browser.code).toBe(code);
    expect(browser.message).toBe(asUrls(node.message));
    expect(browser.file).toBe(asUrls(node.file));
    expect(browser.message).toContain(`${ORIGIN}/${folder}/`);
    expect(browser.message).not.toContain(tmp);
  });

  it('names the byte counts of a truncated sparse.bin', async () => {
    fs.writeFileSync(files.bin, saved[files.bin].subarray(0, 10));
    const { browser } = await bothErrors();
    expect(browser.message).toMatch(
      new RegExp(
        `^loadSparseModel: ${urlOf('sparse\\.bin')} is truncated \\(weight 'd/kernel' needs bytes up to \\d+, file has 10\\): copy or export the model again$`,
      ),
    );
  });

  it.each<[string, Record<string, number>, string, string, string]>([
    ['no model.json (404)', { 'model.json': 404 }, 'model.json', 'missing', 'HTTP 404'],
    ['a model.json that is gone (410)', { 'model.json': 410 }, 'model.json', 'missing', 'HTTP 410'],
    [
      'a forbidden model.json (403)',
      { 'model.json': 403 },
      'model.json',
      'read-failed',
      'HTTP 403 Forbidden',
    ],
    ['no sparse.json (404)', { 'sparse.json': 404 }, 'sparse.json', 'damaged', 'HTTP 404'],
    ['a server error on sparse.json (500)', { 'sparse.json': 500 }, 'sparse.json', 'read-failed', 'HTTP 500'],
    ['no sparse.bin (404)', { 'sparse.bin': 404 }, 'sparse.bin', 'damaged', 'HTTP 404'],
    [
      'a forbidden sparse.bin (403)',
      { 'sparse.bin': 403 },
      'sparse.bin',
      'read-failed',
      'HTTP 403 Forbidden',
    ],
  ])('%s: an error naming the URL and the status', async (_, status, file, code, answer) => {
    const { fetchFunc, requests } = serve(status);
    const err = await loadInBrowser(url, { fetchFunc }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code, file: urlOf(file) });
    expect((err as Error).message).toBe(
      `loadSparseModel: cannot read ${urlOf(file)}: the server answered ${answer}`,
    );
    // Nothing is fetched after the failure.
    expect(requests.map((r) => r.url).pop()).toBe(urlOf(file));
  });

  it('a 404 from the server, with its status text, for a folder that holds no export', async () => {
    const err = await loadInBrowser(`${ORIGIN}/nothing-here/`, { fetchFunc: serve().fetchFunc }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      name: 'ModelFileError',
      code: 'missing',
      file: `${ORIGIN}/nothing-here/model.json`,
      message: `loadSparseModel: cannot read ${ORIGIN}/nothing-here/model.json: the server answered HTTP 404 Not Found`,
    });
  });

  it.each(['model.json', 'sparse.json', 'sparse.bin'])(
    'a fetch of %s that fails (network, CORS) is read-failed, with the failure as its cause',
    async (name) => {
      const { fetchFunc } = serve();
      const failure = new TypeError('Failed to fetch');
      const err = await loadInBrowser(url, {
        fetchFunc: (u, init) => (u === urlOf(name) ? Promise.reject(failure) : fetchFunc(u, init)),
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        name: 'ModelFileError',
        code: 'read-failed',
        file: urlOf(name),
        cause: failure,
        message: `loadSparseModel: cannot fetch ${urlOf(name)}: Failed to fetch`,
      });
      // The same URL loads once the network is back.
      const again = await loadInBrowser(url, { fetchFunc });
      again.dispose();
    },
  );

  it.each([
    '../x.bin',
    '/x.bin',
    `${ORIGIN}/elsewhere/x.bin`,
    '//evil.test/x.bin',
    'a%2Fb.bin',
    'x.bin?y',
    '.',
    '..',
  ])('refuses a data file name %s that leaves the folder, before fetching it', async (name) => {
    fs.writeFileSync(files.manifest, JSON.stringify({ ...manifest(), data: name }));
    const { fetchFunc, requests } = serve();
    const err = await loadInBrowser(url, { fetchFunc }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'unsafe-path',
      message: `loadSparseModel: ${urlOf('sparse.json')} names the data file ${JSON.stringify(name)}, not a file in ${ORIGIN}/${folder}/`,
    });
    expect(requests.map((r) => r.url)).toEqual([urlOf('model.json'), urlOf('sparse.json')]);
  });

  it('follows a sparseManifest in the folder, as Node does', async () => {
    fs.copyFileSync(files.manifest, path.join(dir, '.prev-1-abcdef01-sparse.json'));
    try {
      fs.writeFileSync(
        files.model,
        JSON.stringify({ ...modelJson(), sparseManifest: '.prev-1-abcdef01-sparse.json' }),
      );
      const { fetchFunc, requests } = serve();
      const m = await loadInBrowser(url, { fetchFunc });
      m.dispose();
      expect(requests.map((r) => r.url)).toEqual([
        urlOf('model.json'),
        urlOf('.prev-1-abcdef01-sparse.json'),
        urlOf('sparse.bin'),
      ]);
    } finally {
      fs.rmSync(path.join(dir, '.prev-1-abcdef01-sparse.json'));
    }
  });
});
