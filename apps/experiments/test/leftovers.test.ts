// What a folder holds decides whether it is a run's, not the names in it (review 25): a folder of
// the user's with a `.work/model` of its own is not a run's state; a prune killed in its export's
// save leaves files the next prune cleans up; a run killed between its model export's two renames
// gets its model/ back.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { cli, reproduceTiny as reproduce } from './helpers';
import { DUPLICATE_MS } from '../src/signals';

// Node's fs module itself (runtime's save calls fs.promises through it), for spies.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeFs = require('node:fs') as typeof import('node:fs');

/** `normprune prune` of `model` into `out`, on wasm. */
const pruneTo = (model: string, out: string) =>
  cli(['prune', '--model', model, '--out', out, '--backend', 'wasm']);

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-leftovers-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every file under `dir` (relative path -> content), to compare a folder before and after. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true }) as string[])
    files[f] = statSync(join(dir, f)).isDirectory() ? '<dir>' : readFileSync(join(dir, f), 'latin1');
  return files;
}

test('a folder of yours whose .work has entries named as a run’s state is not a run: refused, never cleared', async () => {
  for (const entry of ['model', 'checkpoint', 'baseline', 'replaced', 'model.old']) {
    const dir = join(tmp, `u-${entry}`);
    mkdirSync(join(dir, '.work', entry), { recursive: true });
    writeFileSync(join(dir, 'report.md'), 'my notes');
    writeFileSync(join(dir, '.work', entry, 'notes.txt'), 'scratch');
    writeFileSync(join(dir, '.work', 'settings.json'), '{}');
    const before = snapshot(dir);
    for (const force of [[], ['--force']]) {
      const r = await reproduce(dir, ...force);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        /holds files that are not a normprune run, which the run would overwrite \(\.work, report\.md\); move them away or choose another --out/,
      );
      expect(snapshot(dir)).toEqual(before);
    }
  }
});

test('a run killed between its model export’s two renames gets its model/ back at the next start, and --resume finishes', async () => {
  const out = join(tmp, 'killed-export');
  expect((await reproduce(out, '--stop-after-steps', '1')).code).toBe(130);
  // What swapDir leaves when killed between its renames: model/ (a file of yours in it) renamed
  // to .work/model.old, the new export complete in .work/model.tmp, not yet renamed into place.
  mkdirSync(join(out, '.work', 'model.old'), { recursive: true });
  writeFileSync(join(out, '.work', 'model.old', 'notes.txt'), 'my notes');
  mkdirSync(join(out, '.work', 'model.tmp'));
  writeFileSync(join(out, '.work', 'model.tmp', 'model.json'), '{}');
  writeFileSync(join(out, '.work', 'model.tmp', 'notes.txt'), 'my notes');

  // Any next start of the run puts model/ back, even one refused before it trains.
  const refused = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--backend',
    'cpu',
    '--out',
    out,
    '--resume',
  ]);
  expect(refused.code).not.toBe(0);
  expect(refused.err).toMatch(/began on the wasm backend/);
  expect(readFileSync(join(out, 'model', 'notes.txt'), 'utf8')).toBe('my notes');
  expect(readdirSync(join(out, '.work'))).not.toContain('model.old');

  const resumed = await reproduce(out, '--resume');
  expect(resumed.code).toBe(0);
  expect(readdirSync(join(out, 'model')).sort()).toEqual(['group1-shard1of1.bin', 'model.json', 'notes.txt']);
  expect(readFileSync(join(out, 'model', 'notes.txt'), 'utf8')).toBe('my notes');
  expect(readdirSync(out)).not.toContain('.work');
});

/**
 * Saves the model in `dir` again with fileSystem, SIGKILLed in its phase 3: the new shards renamed
 * into place, the final model.json rename not done (the previous model.json then lists the
 * `.prev-` backups of the shards it overwrote). As a prune killed while it exports leaves --out.
 */
function killedResave(dir: string): void {
  const root = join(__dirname, '..', '..', '..');
  const script = `
const fs = require('fs');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfl = require('@tensorflow/tfjs-layers');
const { fileSystem } = require('@normprune/runtime');
(async () => {
  await tf.setBackend('cpu');
  const dir = process.argv[1];
  const m = await tfl.loadLayersModel(fileSystem(dir));
  const rename = fs.promises.rename;
  fs.promises.rename = async (from, to) => {
    if (to.endsWith('model.json') && !from.includes('prev-')) process.kill(process.pid, 'SIGKILL');
    return rename(from, to);
  };
  await m.save(fileSystem(dir));
})();`;
  const r = spawnSync(
    process.execPath,
    ['--require', join(root, 'scripts', 'ts-register.cjs'), '-e', script, dir],
    {
      cwd: __dirname,
      encoding: 'utf8',
    },
  );
  expect(r.signal).toBe('SIGKILL');
}

test('prune --out after a prune killed in its export’s save: the save’s leftovers are the export’s, another .bin is not', async () => {
  const run = join(tmp, 'prune-run');
  expect((await reproduce(run)).code).toBe(0);
  const out = join(tmp, 'pruned');
  const prune = () => pruneTo(join(run, 'model'), out);
  expect((await prune()).code).toBe(0);
  killedResave(out);
  const left = readdirSync(out);
  expect(left.some((f) => f.startsWith('.prev-') && f.endsWith('.bin'))).toBe(true);
  expect(left).toContain('group1-shard1of1.bin');
  // A shard count the listed model.json no longer has (a killed save of a larger model) too.
  writeFileSync(join(out, 'group1-shard2of2.bin'), 'x');

  const again = await prune();
  expect(again.err).not.toMatch(/does not list/);
  expect(again.code).toBe(0);
  // The save cleaned up after the killed one (its process is gone).
  expect(readdirSync(out).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);

  // A weight file that is no fileSystem save's is still refused, and kept.
  writeFileSync(join(out, 'weights.bin'), 'mine');
  const refused = await prune();
  expect(refused.code).not.toBe(0);
  expect(refused.err).toMatch(
    /holds weight files its model\.json does not list \(weights\.bin\), which are not the export's/,
  );
  expect(readFileSync(join(out, 'weights.bin'), 'utf8')).toBe('mine');
});

test('prune takes a lock on --out, as a run does: a second prune there is refused while the first writes', async () => {
  const run = join(tmp, 'prune-run');
  // The previous test's run, or one of its own when run alone.
  if (!existsSync(join(run, 'model'))) expect((await reproduce(run)).code).toBe(0);
  const out = join(tmp, 'pruned-locked');
  const prune = () => pruneTo(join(run, 'model'), out);
  expect((await prune()).code).toBe(0);
  // The lock is gone once it has exported.
  expect(readdirSync(out).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
  const before = snapshot(out);
  // Another process (alive) holds the lock: its prune writes there.
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    writeFileSync(join(out, '.normprune.lock'), `${sleeper.pid}\na prune export\n`);
    const second = await prune();
    expect(second.code).toBe(1);
    expect(second.err).toMatch(
      new RegExp(
        `is being written by process ${sleeper.pid} \\(a prune export\\); wait for it to end, or choose another --out`,
      ),
    );
  } finally {
    sleeper.kill();
  }
  rmSync(join(out, '.normprune.lock'));
  expect(snapshot(out)).toEqual(before);
  // A folder in one that a live process writes is refused too: a run's model/ while it runs, a
  // folder deeper in it (a sweep point's model/ while the sweep runs), a link into it.
  const running = join(tmp, 'running-run');
  mkdirSync(join(running, 'plots'), { recursive: true });
  symlinkSync(join(running, 'plots'), join(tmp, 'link-into-run'));
  const runner = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    writeFileSync(join(running, '.normprune.lock'), `${runner.pid}\na run of lenet-500-300\n`);
    for (const into of [
      join(running, 'model'),
      join(running, 'lambda-0.04', 'model'),
      join(running, 'plots', 'sub'),
      join(tmp, 'link-into-run'),
      join(tmp, 'link-into-run', 'sub'),
    ]) {
      const inRun = await pruneTo(join(run, 'model'), into);
      expect([into, inRun.code]).toEqual([into, 1]);
      expect(inRun.err).toContain(
        `--out ${into} is in ${running}, which process ${runner.pid} (a run of lenet-500-300) is writing; wait for it to end, or choose another --out`,
      );
    }
    expect(readdirSync(running).sort()).toEqual(['.normprune.lock', 'plots']);
    // A link to nowhere is named as such.
    symlinkSync(join(tmp, 'nowhere'), join(tmp, 'dangling'));
    const dangling = await pruneTo(join(run, 'model'), join(tmp, 'dangling'));
    expect(dangling.code).toBe(1);
    expect(dangling.err).toContain(
      `--out ${join(tmp, 'dangling')} is a symbolic link to ${join(tmp, 'nowhere')}, which does not exist or cannot be reached; make that folder or choose another --out`,
    );
    // So is one above --out.
    const below = join(tmp, 'dangling', 'sub');
    const danglingAbove = await pruneTo(join(run, 'model'), below);
    expect(danglingAbove.code).toBe(1);
    expect(danglingAbove.err).toContain(
      `--out ${below} is in ${join(tmp, 'dangling')}, which is a symbolic link to ${join(tmp, 'nowhere')}, which does not exist or cannot be reached;`,
    );
    expect(existsSync(join(tmp, 'nowhere'))).toBe(false);
    expect(readdirSync(join(running, 'plots'))).toEqual([]);
  } finally {
    runner.kill();
  }
  // A dead prune's lock is taken over.
  writeFileSync(
    join(out, '.normprune.lock'),
    `${spawnSync(process.execPath, ['-e', '0']).pid}\na prune export\n`,
  );
  expect((await prune()).code).toBe(0);
  expect(readdirSync(out).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
  // A prune that fails once --out is locked (here, on a damaged model) leaves no folder it made.
  const damaged = join(tmp, 'damaged-model');
  mkdirSync(damaged);
  writeFileSync(join(damaged, 'model.json'), '{"modelTopology":');
  // Its missing parents too.
  const fresh = join(tmp, 'pruned-failed', 'a', 'b');
  // The folder goes while the lock still holds it, so that no other process takes it in between.
  const rm = nodeFs.rmSync;
  const lockedAtRemoval: boolean[] = [];
  const rmSpy = jest.spyOn(nodeFs, 'rmSync').mockImplementation((...a: Parameters<typeof rm>) => {
    if (String(a[0]) === fresh) lockedAtRemoval.push(existsSync(join(fresh, '.normprune.lock')));
    return rm(...a);
  });
  let failed;
  try {
    failed = await pruneTo(damaged, fresh);
  } finally {
    rmSpy.mockRestore();
  }
  expect(failed.code).toBe(1);
  expect(failed.err).toMatch(/model\.json is not valid JSON/);
  expect(lockedAtRemoval).toEqual([true]);
  expect(readdirSync(tmp)).not.toContain('pruned-failed');
});

test('prune on Ctrl-C: a signal in its export lets the export finish and exits 130; a second quits, leaving no folder it made', async () => {
  const run = join(tmp, 'prune-run');
  if (!existsSync(join(run, 'model'))) expect((await reproduce(run)).code).toBe(0);
  const prune = (out: string) => pruneTo(join(run, 'model'), out);
  /**
   * Prunes into `out`, sending `count` SIGINTs at the export's first file written (runtime's save
   * opens its files 'wx'). process.exit, which a quit calls, is stood in for by a throw.
   */
  /**
   * Sends `count` SIGINTs, each DUPLICATE_MS after the last as Date.now tells: a signal sooner
   * than that after the first is the same stop delivered twice, not a second Ctrl-C.
   */
  const sigints = (count: number) => {
    const start = Date.now();
    for (let i = 0; i < count; i++) {
      const now = jest.spyOn(Date, 'now').mockReturnValue(start + i * DUPLICATE_MS);
      process.emit('SIGINT', 'SIGINT');
      now.mockRestore();
    }
  };
  const signalledPrune = async (out: string, count: number) => {
    const open = nodeFs.promises.open;
    let sent = false;
    const spy = jest
      .spyOn(nodeFs.promises, 'open')
      .mockImplementation(async (...a: Parameters<typeof open>) => {
        if (!sent && a[1] === 'wx') {
          sent = true;
          sigints(count);
        }
        return open(...a);
      });
    const exit = jest.spyOn(process, 'exit').mockImplementation(((code: number) => {
      throw new Error(`exit ${code}`);
    }) as never);
    try {
      return await prune(out);
    } finally {
      spy.mockRestore();
      exit.mockRestore();
    }
  };
  const once = join(tmp, 'pruned-signalled');
  const r = await signalledPrune(once, 1);
  expect(r.err).toMatch(/Ctrl-C: stopping once the export is written \(Ctrl-C again quits without it\)/);
  expect(r.err).toMatch(/stopped: the export was written before the stop/);
  expect(r.code).toBe(130);
  // The export is whole, and the lock released.
  expect(readdirSync(once).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);

  // A second signal quits at once: the folders this prune made are removed, with what the
  // interrupted save had written in them.
  const q = await signalledPrune(join(tmp, 'pruned-quit', 'a'), 2);
  expect(q.err).toMatch(/Ctrl-C: quitting during the export; run the prune again/);
  expect(q.err).toMatch(/exit 130/);
  expect(existsSync(join(tmp, 'pruned-quit'))).toBe(false);

  // A second signal once the new model.json is in place (the save still tidies up after): a
  // folder this prune made keeps the export, and says so.
  const rename = nodeFs.promises.rename;
  const late = join(tmp, 'pruned-late');
  let renamed = false;
  const lateSpy = jest
    .spyOn(nodeFs.promises, 'rename')
    .mockImplementation(async (...a: Parameters<typeof rename>) => {
      await rename(...a);
      if (!renamed && String(a[1]) === join(late, 'model.json')) {
        renamed = true;
        sigints(2);
      }
    });
  let lateRun;
  try {
    lateRun = await signalledPrune(late, 0);
  } finally {
    lateSpy.mockRestore();
  }
  expect(renamed).toBe(true);
  expect(lateRun.err).toMatch(
    /Ctrl-C: quitting during the export; the new export was in place in .*pruned-late/,
  );
  expect(lateRun.err).toMatch(/exit 130/);
  expect(readdirSync(late).filter((f) => !f.startsWith('.'))).toEqual(['group1-shard1of1.bin', 'model.json']);
  expect(readdirSync(late)).not.toContain('.normprune.lock');

  // A signal before the lock is taken (here, as --out is made) removes what was made, too.
  const early = join(tmp, 'pruned-early', 'a');
  const mkdir = nodeFs.mkdirSync;
  const mkdirSpy = jest.spyOn(nodeFs, 'mkdirSync').mockImplementation(((...a: Parameters<typeof mkdir>) => {
    const made = mkdir(...a);
    if (String(a[0]).startsWith(join(tmp, 'pruned-early'))) process.emit('SIGTERM', 'SIGTERM');
    return made;
  }) as typeof mkdir);
  let earlyRun;
  try {
    earlyRun = await signalledPrune(early, 0);
  } finally {
    mkdirSpy.mockRestore();
  }
  expect(earlyRun.err).toMatch(/SIGTERM: quitting before anything was exported; run the prune again/);
  expect(existsSync(join(tmp, 'pruned-early'))).toBe(false);

  // Into a folder that was there, the quit leaves the earlier export as it was.
  const before = snapshot(once);
  const k = await signalledPrune(once, 2);
  expect(k.err).toMatch(/keeps what it held before; run the prune again/);
  expect(readdirSync(once)).not.toContain('.normprune.lock');
  const left = snapshot(once);
  expect(left['model.json']).toBe(before['model.json']);
  expect(left['group1-shard1of1.bin']).toBe(before['group1-shard1of1.bin']);
});
