import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { initBackend, registerWasmTrainingKernels } from '../src/index.js';
import {
  activate,
  Activation,
  BackendLoaders,
  BackendName,
  defaultLoaders,
  resolveThreads,
  selectBackend,
} from '../src/backend.js';
import { loadModule } from '../src/modules.js';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks.js';

afterEach(() => {
  jest.restoreAllMocks();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

const ok = (tfBackendName: string, extra: Partial<Activation> = {}): Activation => ({
  tfBackendName,
  simd: false,
  threads: 1,
  trainingKernels: false,
  ...extra,
});

/** Fake loaders that record the order they were tried in. */
function fakes(behaviour: Partial<Record<BackendName, Error | Activation>>): {
  loaders: BackendLoaders;
  tried: BackendName[];
} {
  const tried: BackendName[] = [];
  const make = (b: BackendName) => async () => {
    tried.push(b);
    const r = behaviour[b];
    if (r instanceof Error) throw r;
    return r ?? ok(b === 'node' ? 'tensorflow' : b);
  };
  return { loaders: { node: make('node'), wasm: make('wasm'), cpu: make('cpu') }, tried };
}

function notFound(name: string): Error {
  return Object.assign(new Error(`Cannot find module '${name}'\nRequire stack:\n- /x.js`), {
    code: 'MODULE_NOT_FOUND',
  });
}

describe('selectBackend (injected loaders)', () => {
  it('uses tfjs-node when it loads, without trying the others', async () => {
    const { loaders, tried } = fakes({});
    const { info, line } = await selectBackend(undefined, {}, loaders);
    expect(tried).toEqual(['node']);
    expect(info).toMatchObject({ backend: 'node', tfBackendName: 'tensorflow', fallbacks: [] });
    expect(info.reason).toBe('node: the fastest backend that loaded.');
    expect(line).toBe('normprune: using the node backend');
  });

  it('falls back to wasm when tfjs-node is missing, and says how to get it', async () => {
    const { loaders, tried } = fakes({
      node: new Error('@tensorflow/tfjs-node is not installed'),
      wasm: ok('wasm', { simd: true, threads: 1, trainingKernels: true }),
    });
    const { info, line } = await selectBackend(undefined, {}, loaders);
    expect(tried).toEqual(['node', 'wasm']);
    expect(info).toMatchObject({ backend: 'wasm', simd: true, threads: 1, trainingKernels: true });
    expect(info.fallbacks).toEqual([{ backend: 'node', error: '@tensorflow/tfjs-node is not installed' }]);
    expect(info.reason).toContain('node was not used (@tensorflow/tfjs-node is not installed)');
    expect(line).toMatch(
      /^normprune: using the wasm backend \(SIMD on, 1 thread, training kernels on\); node unavailable/,
    );
    expect(line).toContain('tensorflow/tfjs#8742');
    expect(line).toContain('TFJS_NODE_CDN_STORAGE');
    expect(line.split('\n')).toHaveLength(1);
  });

  it('notes threads asked for on a backend other than wasm, naming who asked; none on wasm or for 1', async () => {
    const cpuOnly = {
      node: notFound('@tensorflow/tfjs-node'),
      wasm: notFound('@tensorflow/tfjs-backend-wasm'),
    };
    const cpu = await selectBackend(undefined, {}, fakes(cpuOnly).loaders, resolveThreads(2, {}));
    const said =
      "2 threads were asked for (by the threads option), but threads are the wasm backend's only: " +
      'the cpu backend ignores them and runs on one thread';
    expect(cpu.info.notes).toEqual([said]);
    expect(cpu.info.reason).toContain(said);
    const fromEnv = await selectBackend(
      undefined,
      {},
      fakes({}).loaders,
      resolveThreads(undefined, { NORMPRUNE_THREADS: '3' }),
    );
    expect(fromEnv.info.notes).toEqual([
      "3 threads were asked for (by NORMPRUNE_THREADS=3), but threads are the wasm backend's only: " +
        'the node backend ignores them',
    ]);
    expect(
      (await selectBackend(undefined, {}, fakes(cpuOnly).loaders, resolveThreads(1, {}))).info.notes,
    ).toEqual([]);
    expect((await selectBackend('wasm', {}, fakes({}).loaders, resolveThreads(2, {}))).info.notes).toEqual(
      [],
    );
    // The line initBackend prints says them too, on the same line.
    expect(cpu.line).toMatch(
      new RegExp(`^normprune: using the cpu backend; .*; ${said.replace(/[()]/g, '\\$&')}$`),
    );
    expect(cpu.line.split('\n')).toHaveLength(1);
  });

  it('records a tfjs-node that throws on load and keeps going', async () => {
    const { loaders } = fakes({
      node: new Error('libtensorflow.so.2: cannot open shared object file\n    at stack'),
    });
    const { info } = await selectBackend(undefined, {}, loaders);
    expect(info.backend).toBe('wasm');
    expect(info.fallbacks).toEqual([
      { backend: 'node', error: 'libtensorflow.so.2: cannot open shared object file' },
    ]);
  });

  it('falls back to cpu when wasm fails too, pointing at the faster backends', async () => {
    const { loaders, tried } = fakes({
      node: new Error('@tensorflow/tfjs-node is not installed'),
      wasm: new Error('@tensorflow/tfjs-backend-wasm is not installed'),
    });
    const { info, line } = await selectBackend(undefined, {}, loaders);
    expect(tried).toEqual(['node', 'wasm', 'cpu']);
    expect(info.backend).toBe('cpu');
    expect(info.fallbacks.map((f) => f.backend)).toEqual(['node', 'wasm']);
    expect(line).toMatch(
      /^normprune: using the cpu backend; wasm unavailable \(@tensorflow\/tfjs-backend-wasm is not installed\); .*install @tensorflow\/tfjs-backend-wasm/,
    );
    // At the loaded tfjs-core's version: the backend's exact peer on its own tfjs-core makes an
    // unversioned install fail with ERESOLVE beside an older tfjs-core.
    expect(line).toContain(
      `install @tensorflow/tfjs-backend-wasm@${tf.version_core} (your tfjs-core's version;`,
    );
  });

  it('mentions wasm when only wasm failed before cpu', async () => {
    const { loaders } = fakes({ wasm: new Error('boom') });
    const { info, line } = await selectBackend('wasm', {}, loaders);
    expect(info.backend).toBe('node');
    expect(line).toBe('normprune: using the node backend');
    // The reason does not call node "requested": wasm was, and failed.
    expect(info.reason).toBe(
      "node: wasm was requested by prefer: 'wasm' but did not load, so the fastest other one that did; wasm was not used (boom).",
    );
    const only = fakes({ wasm: new Error('boom'), node: new Error('gone') });
    const r = await selectBackend('wasm', {}, only.loaders);
    expect(only.tried).toEqual(['wasm', 'node', 'cpu']);
    expect(r.line).toContain('@tensorflow/tfjs-backend-wasm');
  });

  it('tries the preferred backend first', async () => {
    const { loaders, tried } = fakes({});
    const { info } = await selectBackend('wasm', {}, loaders);
    expect(tried).toEqual(['wasm']);
    expect(info.reason).toBe("wasm: requested by prefer: 'wasm'.");
  });

  it('lets NORMPRUNE_BACKEND override prefer', async () => {
    const { loaders, tried } = fakes({});
    const { info } = await selectBackend('wasm', { NORMPRUNE_BACKEND: 'cpu' }, loaders);
    expect(tried).toEqual(['cpu']);
    expect(info.reason).toBe('cpu: requested by NORMPRUNE_BACKEND=cpu.');
  });

  it('ignores an empty NORMPRUNE_BACKEND', async () => {
    const { tried, loaders } = fakes({});
    await selectBackend(undefined, { NORMPRUNE_BACKEND: '' }, loaders);
    expect(tried).toEqual(['node']);
  });

  it('rejects an invalid NORMPRUNE_BACKEND, naming the variable and the allowed values', async () => {
    const { loaders, tried } = fakes({});
    await expect(selectBackend(undefined, { NORMPRUNE_BACKEND: 'gpu' }, loaders)).rejects.toThrow(
      'NORMPRUNE_BACKEND="gpu" is not a backend normprune knows: use one of node, wasm, cpu',
    );
    expect(tried).toEqual([]);
  });

  it('rejects an invalid prefer', async () => {
    const { loaders } = fakes({});
    await expect(selectBackend('tensorflow' as BackendName, {}, loaders)).rejects.toThrow(
      'prefer must be one of node, wasm, cpu, got "tensorflow"',
    );
  });

  // NORMPRUNE_BACKEND overrides a valid prefer; it used to hide an invalid one, which then threw
  // only where the variable was unset.
  it('rejects an invalid prefer when NORMPRUNE_BACKEND is set too', async () => {
    for (const env of ['node', 'wasm', 'cpu']) {
      const { loaders, tried } = fakes({});
      await expect(
        selectBackend('tensorflow' as BackendName, { NORMPRUNE_BACKEND: env }, loaders),
      ).rejects.toThrow('initBackend: prefer must be one of node, wasm, cpu, got "tensorflow"');
      expect(tried).toEqual([]);
    }
    // An invalid variable is named first, as before.
    const { loaders } = fakes({});
    await expect(
      selectBackend('tensorflow' as BackendName, { NORMPRUNE_BACKEND: 'gpu' }, loaders),
    ).rejects.toThrow(/^NORMPRUNE_BACKEND="gpu"/);
  });

  it('throws, listing every failure, when no backend starts', async () => {
    const { loaders } = fakes({ node: new Error('a'), wasm: new Error('b'), cpu: new Error('c') });
    await expect(selectBackend(undefined, {}, loaders)).rejects.toThrow(
      'no TensorFlow.js backend could start: node: a; wasm: b; cpu: c',
    );
  });
});

describe('defaultLoaders with an injected module loader', () => {
  const failing = (error: Error) => async (name: string) => {
    if (name === '@tensorflow/tfjs-node') throw error;
    return loadModule(name);
  };

  it('reports a missing tfjs-node as not installed', async () => {
    await expect(defaultLoaders(failing(notFound('@tensorflow/tfjs-node'))).node()).rejects.toThrow(
      '@tensorflow/tfjs-node is not installed',
    );
  });

  it('reports a tfjs-node that is present but broken as failing to load', async () => {
    await expect(
      defaultLoaders(failing(new Error('libtensorflow.so.2: cannot open shared object file'))).node(),
    ).rejects.toThrow(
      '@tensorflow/tfjs-node failed to load: libtensorflow.so.2: cannot open shared object file',
    );
    // A missing dependency of tfjs-node is a broken install, not an absent one.
    await expect(defaultLoaders(failing(notFound('@mapbox/node-pre-gyp'))).node()).rejects.toThrow(
      /failed to load: Cannot find module '@mapbox\/node-pre-gyp'/,
    );
  });

  it('detects a tfjs-node bound to another copy of tfjs-core', async () => {
    const load = async (name: string) => (name === '@tensorflow/tfjs-node' ? {} : loadModule(name));
    await expect(defaultLoaders(load).node()).rejects.toThrow(/another copy of @tensorflow\/tfjs-core/);
  });

  it("activates tfjs-node's 'tensorflow' backend when it loads", async () => {
    // Stands in for tfjs-node: loading it registers a backend named 'tensorflow'.
    const load = async (name: string) => {
      if (name !== '@tensorflow/tfjs-node') return loadModule(name);
      tf.registerBackend('tensorflow', () => new MathBackendCPU(), 0);
      return {};
    };
    try {
      const { info } = await selectBackend(undefined, {}, defaultLoaders(load));
      expect(info).toMatchObject({ backend: 'node', tfBackendName: 'tensorflow', fallbacks: [] });
      expect(tf.getBackend()).toBe('tensorflow');
    } finally {
      await tf.setBackend('cpu');
      tf.removeBackend('tensorflow');
    }
  });

  it('falls back to cpu when the wasm package is missing', async () => {
    const load = async (name: string) => {
      if (name === '@tensorflow/tfjs-node' || name === '@tensorflow/tfjs-backend-wasm') throw notFound(name);
      return loadModule(name);
    };
    const { info, line } = await selectBackend(undefined, {}, defaultLoaders(load));
    expect(info.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(info.fallbacks).toEqual([
      { backend: 'node', error: '@tensorflow/tfjs-node is not installed' },
      { backend: 'wasm', error: '@tensorflow/tfjs-backend-wasm is not installed' },
    ]);
    expect(line).toContain('using the cpu backend');
  });
});

describe('activate', () => {
  it('turns a failed backend initialisation into an error carrying its reason, without console noise', async () => {
    tf.registerBackend('normprune-broken', async () => {
      throw new Error('simulated: no binary');
    });
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      await expect(activate('normprune-broken')).rejects.toThrow(
        /tf.setBackend\('normprune-broken'\) failed: Error: simulated: no binary/,
      );
      expect(warn).not.toHaveBeenCalled();
    } finally {
      tf.removeBackend('normprune-broken');
      await tf.setBackend('cpu');
    }
  });
});

describe('initBackend (real backends)', () => {
  it('initialises wasm in Node from the installed binaries and reports it truthfully', async () => {
    const info = await initBackend({ prefer: 'wasm', quiet: true });
    expect(info.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.tfBackendName).toBe('wasm');
    expect(info.simd).toBe(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.trainingKernels).toBe(true);
    // Idempotent: registering again and re-initialising changes nothing.
    registerWasmTrainingKernels();
    expect((await initBackend({ prefer: 'wasm', quiet: true })).backend).toBe('wasm');

    const a = tf.randomNormal([37, 53], 0, 1, 'float32', 1);
    const b = tf.randomNormal([29, 53], 0, 1, 'float32', 2);
    const onWasm = await expectNoLeak(async () => {
      const c = tf.matMul(a, b, false, true);
      const data = await c.data();
      c.dispose();
      return data;
    });
    const fromWasm = [a.dataSync(), b.dataSync()];
    tf.dispose([a, b]);
    await tf.setBackend('cpu');
    const ref = tf.tidy(() =>
      tf.matMul(tf.tensor2d(fromWasm[0], [37, 53]), tf.tensor2d(fromWasm[1], [29, 53]), false, true),
    );
    // Relative to the output's scale (entries reach ~26 here): measured 2e-7. An absolute
    // 1e-5 would be a 2x margin on float32 rounding of sums of that size (measured 5.7e-6).
    const refData = ref.dataSync();
    const scale = Math.max(...Array.from(refData, Math.abs));
    expect(maxDiff(onWasm, refData).abs / scale).toBeLessThan(1e-5);
    ref.dispose();
  });

  it('prints one line unless quiet', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    await initBackend({ prefer: 'cpu' });
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0][0]).toBe('normprune: using the cpu backend');
    await initBackend({ prefer: 'cpu', quiet: true });
    expect(log).toHaveBeenCalledTimes(1);
  });

  it('refuses options that are not an object, and keys it does not take, listing those it takes', async () => {
    const backend = tf.getBackend();
    const listed = '`prefer`, `quiet`, `threads`, `releaseSavedTensorsDuringBackprop`';
    await expect(initBackend({ prefered: 'cpu', quiet: true } as never)).rejects.toThrow(
      `initBackend: unknown option \`prefered\` (did you mean \`prefer\`?); the options are ${listed}`,
    );
    await expect(initBackend({ backend: 'cpu', thread: 2, Quiet: true } as never)).rejects.toThrow(
      'initBackend: unknown options `backend`, `thread` (did you mean `threads`?), `Quiet` (did you mean `quiet`?); the options are',
    );
    // One edit away: a letter left out, added or changed, two neighbours swapped; not two edits.
    for (const [typo, meant] of [
      ['threds', 'threads'],
      ['qiuet', 'quiet'],
      ['preferr', 'prefer'],
      ['quiat', 'quiet'],
    ])
      await expect(initBackend({ [typo]: 1 } as never)).rejects.toThrow(
        `initBackend: unknown option \`${typo}\` (did you mean \`${meant}\`?); the options are ${listed}`,
      );
    await expect(initBackend({ thrads2: 1 } as never)).rejects.toThrow(
      `initBackend: unknown option \`thrads2\`; the options are ${listed}`,
    );
    await expect(initBackend({ prefer: null, quiet: null } as never)).rejects.toThrow(
      'initBackend: options `prefer`, `quiet` are null: leave them out for the default, or give a value',
    );
    await expect(initBackend([] as never)).rejects.toThrow(
      `initBackend: options must be an object such as { prefer: 'wasm' }; the options are ${listed}`,
    );
    await expect(initBackend('cpu' as never)).rejects.toThrow(
      `initBackend: options must be an object such as { prefer: 'wasm' }; the options are ${listed}`,
    );
    await expect(initBackend({ prefer: null } as never)).rejects.toThrow(
      'initBackend: option `prefer` is null: leave it out for the default, or give a value',
    );
    await expect(initBackend({ quiet: 'false' } as never)).rejects.toThrow(
      'initBackend: quiet must be true or false, got "false" (a string)',
    );
    await expect(initBackend({ releaseSavedTensorsDuringBackprop: 1 } as never)).rejects.toThrow(
      'initBackend: releaseSavedTensorsDuringBackprop must be true or false, got 1',
    );
    // Refused before anything changes.
    expect(tf.getBackend()).toBe(backend);
  });

  it('honours NORMPRUNE_BACKEND from the environment', async () => {
    const saved = process.env.NORMPRUNE_BACKEND;
    try {
      process.env.NORMPRUNE_BACKEND = 'cpu';
      expect((await initBackend({ prefer: 'wasm', quiet: true })).backend).toBe('cpu');
      process.env.NORMPRUNE_BACKEND = 'fast';
      await expect(initBackend({ quiet: true })).rejects.toThrow(/NORMPRUNE_BACKEND="fast".*node, wasm, cpu/);
    } finally {
      if (saved === undefined) delete process.env.NORMPRUNE_BACKEND;
      else process.env.NORMPRUNE_BACKEND = saved;
    }
  });

  it('without a preference, takes the fastest backend present here', async () => {
    let nodeInstalled = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      nodeInstalled = false;
    }
    const info = await initBackend({ quiet: true });
    if (nodeInstalled) {
      expect(info.backend === 'node' || info.fallbacks[0]?.backend === 'node').toBe(true);
    } else {
      // The normal situation on this project's machines (see the README).
      expect(info.fallbacks[0]).toEqual({ backend: 'node', error: '@tensorflow/tfjs-node is not installed' });
      expect(info.backend).toBe('wasm');
    }
  });
});
