// initBackend's `threads` option: validation, NORMPRUNE_THREADS, and the
// threaded wasm build actually running (Jest gives this file its own engine,
// so wasm starts here for the first time).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// Registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendEnvironmentProblem, initBackend } from '../src/index.js';
import { resolveThreads } from '../src/backend.js';

describe('resolveThreads', () => {
  it('defaults to 1 and takes the option, NORMPRUNE_THREADS first', () => {
    expect(resolveThreads(undefined, {}).count).toBe(1);
    expect(resolveThreads(2, {}).count).toBe(2);
    expect(resolveThreads(2, { NORMPRUNE_THREADS: '1' }).count).toBe(1);
    expect(resolveThreads(undefined, { NORMPRUNE_THREADS: '' }).count).toBe(1);
  });

  it('refuses what is not a whole number from 1 to 64, naming where it came from', () => {
    for (const bad of [0, -1, 1.5, 65, NaN]) {
      expect(() => resolveThreads(bad, {})).toThrow(/initBackend: threads .* is not a thread count/);
    }
    // JSON would show NaN and Infinity as null.
    expect(() => resolveThreads(NaN, {})).toThrow(/^initBackend: threads NaN is not a thread count/);
    expect(() => resolveThreads(Infinity, {})).toThrow(/^initBackend: threads Infinity is not/);
    expect(() => resolveThreads('2' as unknown as number, {})).toThrow(/^initBackend: threads "2" is not/);
    expect(() => resolveThreads(undefined, { NORMPRUNE_THREADS: 'two' })).toThrow(
      /NORMPRUNE_THREADS="two" is not a thread count: use a whole number from 1 to 64/,
    );
  });

  // The variable overrides a valid option; it used to hide an invalid one, which then threw
  // only where the variable was unset.
  it('refuses an invalid option when NORMPRUNE_THREADS is set too', () => {
    for (const bad of [0, -1, 1.5, 65, NaN, '2' as unknown as number]) {
      for (const env of ['1', '2']) {
        expect(() => resolveThreads(bad, { NORMPRUNE_THREADS: env })).toThrow(
          /^initBackend: threads .* is not a thread count: use a whole number from 1 to 64$/,
        );
      }
    }
    // An invalid variable is named first, as before.
    expect(() => resolveThreads(0, { NORMPRUNE_THREADS: 'two' })).toThrow(/^NORMPRUNE_THREADS="two"/);
    expect(resolveThreads(4, { NORMPRUNE_THREADS: '2' }).count).toBe(2);
  });
});

describe('NORMPRUNE_THREADS', () => {
  // Number() took hex, exponents, signs, decimals and whitespace: "0x2", "2e0" and " 2" started 2 threads.
  it('takes decimal digits only, as its error asks', () => {
    expect(resolveThreads(undefined, { NORMPRUNE_THREADS: '2' }).count).toBe(2);
    expect(resolveThreads(undefined, { NORMPRUNE_THREADS: '64' }).count).toBe(64);
    expect(resolveThreads(undefined, { NORMPRUNE_THREADS: '02' }).count).toBe(2);
    for (const bad of [
      '0x2',
      '2e0',
      ' 2',
      '2 ',
      '\t2\n',
      '+2',
      '2.0',
      '2.',
      '0b10',
      '0o2',
      '1_0',
      '２',
      'Infinity',
    ]) {
      expect(() => resolveThreads(4, { NORMPRUNE_THREADS: bad })).toThrow(
        `NORMPRUNE_THREADS=${JSON.stringify(bad)} is not a thread count: use a whole number from 1 to 64 (or unset NORMPRUNE_THREADS)`,
      );
      expect(backendEnvironmentProblem({ NORMPRUNE_THREADS: bad })).toMatch(/is not a thread count/);
    }
  });
});

describe('backendEnvironmentProblem', () => {
  it('is undefined for unset, empty and valid variables', () => {
    expect(backendEnvironmentProblem({})).toBeUndefined();
    expect(backendEnvironmentProblem({ NORMPRUNE_BACKEND: '', NORMPRUNE_THREADS: '' })).toBeUndefined();
    for (const b of ['node', 'wasm', 'cpu'])
      expect(backendEnvironmentProblem({ NORMPRUNE_BACKEND: b, NORMPRUNE_THREADS: '2' })).toBeUndefined();
  });

  it('throws, rather than returns as a problem of the variables, for an env that is not an object', () => {
    // Before: it returned "Cannot read properties of undefined (reading 'NORMPRUNE_BACKEND')".
    expect(() => backendEnvironmentProblem(undefined as never)).toThrow(TypeError);
    expect(() => backendEnvironmentProblem(undefined as never)).toThrow(
      'backendEnvironmentProblem(env): env must be an object of variables, such as process.env; got undefined',
    );
    expect(() => backendEnvironmentProblem(null as never)).toThrow(/got null$/);
    expect(() => backendEnvironmentProblem('wasm' as never)).toThrow(/got "wasm"$/);
  });

  it("names the variable, its value and the fix, in initBackend's words", async () => {
    expect(backendEnvironmentProblem({ NORMPRUNE_BACKEND: 'gpu' })).toBe(
      'NORMPRUNE_BACKEND="gpu" is not a backend normprune knows: use one of node, wasm, cpu (or unset NORMPRUNE_BACKEND)',
    );
    expect(backendEnvironmentProblem({ NORMPRUNE_THREADS: 'many' })).toBe(
      'NORMPRUNE_THREADS="many" is not a thread count: use a whole number from 1 to 64 (or unset NORMPRUNE_THREADS)',
    );
    // initBackend (which reads process.env) refuses each with the same message, before loading anything.
    const saved = { ...process.env };
    try {
      for (const env of [{ NORMPRUNE_BACKEND: 'gpu' }, { NORMPRUNE_THREADS: '65' }]) {
        delete process.env.NORMPRUNE_BACKEND;
        delete process.env.NORMPRUNE_THREADS;
        Object.assign(process.env, env);
        const thrown = await initBackend({ quiet: true }).then(
          () => undefined,
          (e: Error) => e.message,
        );
        expect(thrown).toBe(backendEnvironmentProblem(env));
      }
    } finally {
      for (const k of ['NORMPRUNE_BACKEND', 'NORMPRUNE_THREADS']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});

describe('initBackend({ threads: 2 })', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('starts the threaded wasm build with its training kernels, and trains', async () => {
    const info = await initBackend({ prefer: 'wasm', threads: 2, quiet: true });
    expect(info).toMatchObject({ backend: 'wasm', threads: 2, trainingKernels: true });
    expect(tf.getBackend()).toBe('wasm');
    const w = tf.variable(tf.randomNormal([8, 4], 0, 1, 'float32', 1));
    const x = tf.randomNormal([16, 8], 0, 1, 'float32', 2);
    const opt = tf.train.sgd(0.1);
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const loss = opt.minimize(() => tf.mean(tf.square(tf.matMul(x, w))) as tf.Scalar, true)!;
      losses.push((await loss.data())[0]);
      loss.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(losses[4]).toBeLessThan(losses[0]);
    tf.dispose([w, x]);
    opt.dispose();
  });

  it('says so in the reason when wasm already runs with fewer threads', async () => {
    const info = await initBackend({ prefer: 'wasm', threads: 4, quiet: true });
    expect(info.backend).toBe('wasm');
    expect(info.threads).toBe(2);
    expect(info.reason).toMatch(
      /4 threads were asked for \(by the threads option\), but the wasm backend was already started with 2/,
    );
    expect(info.notes).toEqual([
      '4 threads were asked for (by the threads option), but the wasm backend was already started with 2 (threads must be set before its first use in the process)',
    ]);
    // Named by the variable when it set the count, as the note for a backend that ignores threads is.
    const saved = process.env.NORMPRUNE_THREADS;
    process.env.NORMPRUNE_THREADS = '3';
    try {
      const fromEnv = await initBackend({ prefer: 'wasm', quiet: true });
      expect(fromEnv.notes).toEqual([
        '3 threads were asked for (by NORMPRUNE_THREADS=3), but the wasm backend was already started with 2 (threads must be set before its first use in the process)',
      ]);
    } finally {
      if (saved === undefined) delete process.env.NORMPRUNE_THREADS;
      else process.env.NORMPRUNE_THREADS = saved;
    }
  });
});

describe("the threaded build's files", () => {
  it('live in a private folder of the process (mode 0700), removed when it exits', () => {
    // A process of its own, with a TMPDIR of its own: the folder it makes is the only entry.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-threads-tmp-'));
    try {
      const script = `
        const fs = require('fs'), path = require('path'), os = require('os');
        require(${JSON.stringify(path.resolve(__dirname, '..'))}).initBackend({ prefer: 'wasm', threads: 2, quiet: true }).then((info) => {
          const [dir] = fs.readdirSync(os.tmpdir()).filter((d) => d.includes('-' + process.pid + '-'));
          const st = fs.statSync(path.join(os.tmpdir(), dir));
          console.log(JSON.stringify({ threads: info.threads, dir, mode: st.mode & 0o777, uid: st.uid, files: fs.readdirSync(path.join(os.tmpdir(), dir)).sort() }));
          process.exit(0); // the pthread workers would keep the process alive
        });`;
      // A folder a killed process left: its pid no longer runs (pids stay below 2^22 on Linux).
      const stale = path.join(tmp, 'normprune-wasm-threads-4999999-abcdef');
      fs.mkdirSync(stale);
      // Another user's or a live process's folder is left alone.
      const live = path.join(tmp, `normprune-wasm-threads-${process.pid}-abcdef`);
      fs.mkdirSync(live);
      const r = spawnSync(process.execPath, ['-e', script], {
        env: { ...process.env, TMPDIR: tmp },
        encoding: 'utf8',
      });
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out).toMatchObject({ threads: 2, mode: 0o700, uid: process.getuid!() });
      expect(out.dir).toMatch(new RegExp(`^normprune-wasm-threads-${r.pid}-\\w{6}$`));
      expect(out.files).toEqual(['threaded-simd.js', 'threaded-simd.worker.js']);
      expect(fs.readdirSync(tmp)).toEqual([path.basename(live)]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
