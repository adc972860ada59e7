// Crash safety of a run folder: one writer at a time, a rerun that fails or is killed never
// loses the finished run it replaces, a checkpoint caught between its renames is recovered,
// and files of the user's in the folder survive reruns, --force and report --export.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bootId,
  copyDirAtomic,
  liveLockHolder,
  lockDir,
  lockTimings,
  machineBoot,
  ourLeftovers,
  pidNamespace,
  processStarted,
  recoverDir,
  writeDirAtomic,
  writeFileAtomic,
  writeFileNamed,
} from '../src/fsutil';
import { cli, reproduceTiny as reproduce, withStderr, writeVariant } from './helpers';

let tmp: string;
let finished: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-crash-'));
  finished = join(tmp, 'finished');
  expect((await reproduce(finished)).code).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the finished run, for a test to change. */
function copyOfFinished(name: string): string {
  const dir = join(tmp, name);
  cpSync(finished, dir, { recursive: true });
  return dir;
}

/** Reruns `out` with --force under a config whose `phase` diverges (a learning rate of 1e30). */
function rerunDiverging(out: string, phase: 'baseline' | 'proximal') {
  const diverge = writeVariant(tmp, `diverge-${phase}`, (cfg) =>
    Object.assign(cfg.training[phase], { optimizer: 'sgd', momentum: 0, learningRate: 1e30 }),
  );
  return cli([
    'train',
    '--config',
    diverge,
    '--budget',
    'tiny',
    '--backend',
    'wasm',
    '--force',
    '--out',
    out,
  ]);
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

test('a second writer of one --out is refused while the first runs; a dead writer’s lock is taken over', async () => {
  const out = copyOfFinished('locked');
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    // The pid alone, as the first normprune wrote its lock: nothing tells its holder from a later
    // process given its pid, so the refusal says how to check.
    writeFileSync(join(out, '.normprune.lock'), `${sleeper.pid}\n`);
    const second = await reproduce(out);
    expect(second.code).toBe(1);
    expect(second.err).toMatch(
      new RegExp(
        `is being written by process ${sleeper.pid}; wait for it to end, or choose another --out \\(its lock ` +
          '.*\\.normprune\\.lock, written by an older normprune or without /proc, records no start time, so process ' +
          `${sleeper.pid} may be another program, given that pid after the lock's holder ended: if \`ps -p ` +
          `${sleeper.pid}\` shows no normprune run, sweep or prune, delete .*\\.normprune\\.lock\\)`,
      ),
    );
    const sweep = await cli(['sweep', 'lenet-500-300', '--budget', 'tiny', '--lambda', '0.01', '--out', out]);
    expect(sweep.code).toBe(1);
    expect(sweep.err).toMatch(/is being written by process/);
  } finally {
    sleeper.kill();
  }
  // The run it refused is untouched.
  expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(
    readFileSync(join(finished, 'results.json'), 'utf8'),
  );
  // A lock (and a write probe) of a process that died: taken over, and gone after the run.
  const pid = deadPid();
  writeFileSync(join(out, '.normprune.lock'), `${pid}\n`);
  writeFileSync(join(out, `.write-probe-${pid}`), '');
  const after = await reproduce(out);
  expect(after.err).not.toMatch(/Error/);
  expect(after.code).toBe(0);
  expect(existsSync(join(out, '.normprune.lock'))).toBe(false);
  expect(existsSync(join(out, `.write-probe-${pid}`))).toBe(false);
});

test('a rerun that fails gives back the finished run it replaced; files of the user’s stay', async () => {
  const out = copyOfFinished('failed-rerun');
  writeFileSync(join(out, 'NOTES.md'), 'mine');
  writeFileSync(join(out, 'model', 'DEPLOY.md'), 'mine');
  writeFileSync(join(out, 'plots', 'my-figure.svg'), '<svg/>');
  const before = readFileSync(join(out, 'results.json'), 'utf8');
  const configBefore = readFileSync(join(out, 'config.json'), 'utf8');
  const r = await rerunDiverging(out, 'baseline');
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/the training loss is (NaN|Infinity)/);
  expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(before);
  expect(readFileSync(join(out, 'config.json'), 'utf8')).toBe(configBefore);
  expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
  // Nothing of the failed rerun is left: not even an empty .work/ (audit 28).
  expect(existsSync(join(out, '.work'))).toBe(false);
  // A rerun that finishes replaces the run, and only the run.
  expect((await reproduce(out, '--seed', '2', '--force')).code).toBe(0);
  expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).seed).toBe(2);
  for (const f of ['NOTES.md', join('model', 'DEPLOY.md'), join('plots', 'my-figure.svg')])
    expect(readFileSync(join(out, f), 'utf8')).toMatch(/mine|svg/);
  expect(existsSync(join(out, '.work'))).toBe(false);
});

test('a rerun that fails after a checkpoint keeps the run it replaces aside, not mixed with its own', async () => {
  const out = copyOfFinished('failed-after-checkpoint');
  const before = readFileSync(join(out, 'results.json'), 'utf8');
  const r = await rerunDiverging(out, 'proximal');
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/the finished run this one replaces is kept in .*\.work\/replaced until it finishes/);
  expect(existsSync(join(out, '.work', 'checkpoint', 'state.json'))).toBe(true);
  expect(existsSync(join(out, 'results.json'))).toBe(false);
  expect(readFileSync(join(out, '.work', 'replaced', 'results.json'), 'utf8')).toBe(before);
  // Started over with --force, the new run replaces it when it finishes.
  expect((await reproduce(out, '--force')).code).toBe(0);
  expect(existsSync(join(out, '.work'))).toBe(false);
});

test('a rerun stopped before it finishes keeps the run it replaces aside until --resume finishes it', async () => {
  const out = copyOfFinished('stopped-rerun');
  const before = readFileSync(join(out, 'results.json'), 'utf8');
  expect((await reproduce(out, '--stop-after-steps', '1')).code).toBe(130);
  const aside = join(out, '.work', 'replaced');
  expect(readFileSync(join(aside, 'results.json'), 'utf8')).toBe(before);
  expect(existsSync(join(aside, 'model', 'model.json'))).toBe(true);
  const report = await cli(['report', '--table', out]);
  expect(report.code).toBe(1);
  expect(report.err).toMatch(/a rerun there has not finished: the run it replaces is in .*\.work\/replaced/);
  // A kill before the first checkpoint: --resume has nothing to continue and says where the old run is.
  const noCheckpoint = join(tmp, 'killed-rerun');
  cpSync(out, noCheckpoint, { recursive: true });
  rmSync(join(noCheckpoint, '.work', 'checkpoint'), { recursive: true });
  const resumeNothing = await reproduce(noCheckpoint, '--resume');
  expect(resumeNothing.code).toBe(1);
  expect(resumeNothing.err).toMatch(
    /no checkpoint in .*; a rerun there was killed before its first checkpoint, so the finished run it replaced is put back in /,
  );
  expect(readFileSync(join(noCheckpoint, 'results.json'), 'utf8')).toBe(before);
  expect(existsSync(join(noCheckpoint, '.work', 'replaced'))).toBe(false);
  // Running it again keeps that run aside (the partial files go) until the rerun finishes.
  expect((await reproduce(noCheckpoint, '--stop-after-steps', '1')).code).toBe(130);
  expect(readFileSync(join(noCheckpoint, '.work', 'replaced', 'results.json'), 'utf8')).toBe(before);
  const resumed = await reproduce(out, '--resume');
  expect(resumed.code).toBe(0);
  expect(existsSync(aside)).toBe(false);
  // The same run and seed: the same figures as the run it replaced.
  const fields = (s: string) => {
    const r = JSON.parse(s);
    return [r.compressionPct, r.baseline.testError, r.compressed.testError];
  };
  expect(fields(readFileSync(join(out, 'results.json'), 'utf8'))).toEqual(fields(before));
});

test('a move aside or a restore that a kill cut short is completed by the next run, nothing lost', async () => {
  // Killed while moving aside: config.json and metrics.jsonl already in the staging folder.
  const out = copyOfFinished('half-aside');
  const before = readFileSync(join(out, 'results.json'), 'utf8');
  const staging = join(out, '.work', 'replaced.staging');
  mkdirSync(staging, { recursive: true });
  for (const f of ['config.json', 'metrics.jsonl']) renameSync(join(out, f), join(staging, f));
  const diverge = writeVariant(tmp, 'diverge-3', (cfg) =>
    Object.assign(cfg.training.baseline, { optimizer: 'sgd', momentum: 0, learningRate: 1e30 }),
  );
  const fail = () =>
    cli(['train', '--config', diverge, '--budget', 'tiny', '--backend', 'wasm', '--force', '--out', out]);
  expect((await fail()).code).toBe(1);
  for (const f of ['config.json', 'metrics.jsonl', 'results.json'])
    expect(readFileSync(join(out, f), 'utf8')).toBe(readFileSync(join(finished, f), 'utf8'));
  expect(existsSync(staging)).toBe(false);
  // Killed while restoring: the marker is there, results.json still aside.
  expect((await reproduce(out, '--stop-after-steps', '1')).code).toBe(130);
  const aside = join(out, '.work', 'replaced');
  writeFileSync(join(aside, '.restoring'), '');
  rmSync(join(out, '.work', 'checkpoint'), { recursive: true });
  renameSync(join(aside, 'config.json'), join(out, 'config.json'));
  expect((await fail()).code).toBe(1);
  expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(before);
  expect(readFileSync(join(out, 'config.json'), 'utf8')).toBe(
    readFileSync(join(finished, 'config.json'), 'utf8'),
  );
  expect(existsSync(aside)).toBe(false);
});

test('a checkpoint caught between the renames that replace it is put back for --resume', async () => {
  const out = join(tmp, 'between-renames');
  expect((await reproduce(out, '--stop-after-steps', '3')).code).toBe(130);
  const ckpt = join(out, '.work', 'checkpoint');
  renameSync(ckpt, `${ckpt}.old`);
  mkdirSync(`${ckpt}.tmp`); // the next copy, not yet complete
  const resumed = await reproduce(out, '--resume');
  expect(resumed.err).not.toMatch(/no checkpoint/);
  expect(resumed.code).toBe(0);
  const fields = (dir: string) => {
    const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
    return [r.compressionPct, r.baseline.testError, r.compressed.testError];
  };
  expect(fields(out)).toEqual(fields(finished));
  expect(existsSync(join(out, '.work'))).toBe(false);
});

test('--force over a sweep removes its point runs, not the user’s files beside them', async () => {
  const sweep = join(tmp, 'sweep');
  const args = ['--budget', 'tiny', '--backend', 'wasm', '--out', sweep];
  expect((await cli(['sweep', 'lenet-500-300', '--lambda', '0.01', ...args])).code).toBe(0);
  writeFileSync(join(sweep, 'lambda-0.01', 'notes.txt'), 'mine');
  expect((await cli(['reproduce', 'lenet-500-300', '--force', ...args])).code).toBe(0);
  expect(existsSync(join(sweep, 'sweep.json'))).toBe(false);
  expect(existsSync(join(sweep, 'lambda-0.01', 'results.json'))).toBe(false);
  expect(readFileSync(join(sweep, 'lambda-0.01', 'notes.txt'), 'utf8')).toBe('mine');
});

test('report --export keeps files of the user’s in an exported run folder; prune takes a killed save’s leftovers', async () => {
  const dir = join(tmp, 'exported');
  expect((await cli(['report', '--table', finished, '--export', dir])).code).toBe(0);
  writeFileSync(join(dir, 'lenet-500-300', 'NOTES.md'), 'mine');
  expect((await cli(['report', '--table', finished, '--export', dir])).code).toBe(0);
  expect(readFileSync(join(dir, 'lenet-500-300', 'NOTES.md'), 'utf8')).toBe('mine');
  expect(existsSync(join(dir, 'lenet-500-300', 'results.json'))).toBe(true);
  const pruned = join(tmp, 'pruned');
  expect((await cli(['prune', '--model', finished, '--out', pruned, '--backend', 'wasm'])).code).toBe(0);
  writeFileSync(join(pruned, `.group1-shard1of1.bin.${deadPid()}-1.tmp`), 'partial');
  const again = await cli(['prune', '--model', finished, '--out', pruned, '--backend', 'wasm']);
  expect(again.err).not.toMatch(/not an exported model/);
  expect(again.code).toBe(0);
});

test('a symlinked model/ is moved as the link: the files it points at are not touched', async () => {
  const out = copyOfFinished('linked-model');
  const shared = join(tmp, 'shared-model');
  renameSync(join(out, 'model'), shared);
  symlinkSync(shared, join(out, 'model'));
  const before = readFileSync(join(shared, 'model.json'), 'utf8');
  expect((await reproduce(out, '--seed', '3', '--force')).code).toBe(0);
  expect(readFileSync(join(shared, 'model.json'), 'utf8')).toBe(before);
  expect(lstatSync(join(out, 'model')).isSymbolicLink()).toBe(false);
  expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
});

test('a .work/replaced emptied by hand does not make the next failed rerun lose the finished run', async () => {
  const out = copyOfFinished('emptied-aside');
  mkdirSync(join(out, '.work', 'replaced'), { recursive: true });
  const before = readFileSync(join(out, 'results.json'), 'utf8');
  const diverge = writeVariant(tmp, 'diverge-2', (cfg) =>
    Object.assign(cfg.training.baseline, { optimizer: 'sgd', momentum: 0, learningRate: 1e30 }),
  );
  const r = await cli([
    'train',
    '--config',
    diverge,
    '--budget',
    'tiny',
    '--backend',
    'wasm',
    '--force',
    '--out',
    out,
  ]);
  expect(r.code).toBe(1);
  expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(before);
});

test('sweep --resume recovers a point checkpoint caught between its renames', async () => {
  const out = join(tmp, 'sweep-between');
  const args = [
    'sweep',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--lambda',
    '0.01',
    '--backend',
    'wasm',
    '--out',
    out,
  ];
  expect((await cli([...args, '--stop-after-steps', '3'])).code).toBe(130);
  const ckpt = join(out, 'lambda-0.01', '.work', 'checkpoint');
  renameSync(ckpt, `${ckpt}.old`);
  const resumed = await cli([...args, '--resume']);
  expect(resumed.err).not.toMatch(/holds an unfinished run/);
  expect(resumed.code).toBe(0);
});

describe('fsutil', () => {
  test('lockDir refuses a second writer in this process, and takes over a dead, garbage or inherited lock', () => {
    const dir = join(tmp, 'lock');
    mkdirSync(dir);
    const lock = join(dir, '.normprune.lock');
    const release = lockDir(dir, 'a test');
    expect(() => lockDir(dir, 'another')).toThrow(/is being written by this process \(a test\)/);
    release();
    expect(existsSync(lock)).toBe(false);
    // Garbage, and this pid on a lock this process never took (a container's node is pid 1 in
    // every run): both are a dead process's.
    for (const content of ['', 'not a pid\n', `${process.pid}\nan earlier life\n`]) {
      writeFileSync(lock, content);
      const again = lockDir(dir, 'x');
      expect(readFileSync(lock, 'utf8')).toBe(
        `${process.pid}\nx\n${processStarted(process.pid)}\n${pidNamespace()}\n${bootId()}\n${hostname()}\n`,
      );
      again();
    }
    // A live process given a dead holder's pid: told apart by its start time (Linux's /proc).
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const started = processStarted(sleeper.pid!);
      expect(started).toMatch(/^\d+$/);
      const ns = pidNamespace();
      expect(ns).toMatch(/^pid:\[\d+\]$/);
      writeFileSync(lock, `${sleeper.pid}\nthe holder\n${started}\n${ns}\n`);
      expect(() => lockDir(dir, 'x')).toThrow(`is being written by process ${sleeper.pid} (the holder)`);
      writeFileSync(lock, `${sleeper.pid}\nan earlier holder of this pid\n${Number(started) - 1}\n${ns}\n`);
      const reused = lockDir(dir, 'x');
      expect(readFileSync(lock, 'utf8')).toMatch(new RegExp(`^${process.pid}\nx\n`));
      reused();
      // Written in another pid namespace (a container sharing the folder), pid and start time are
      // that namespace's, whatever process has that pid here: the lock holds while its holder
      // refreshes it (see the heartbeat tests below).
      writeFileSync(lock, `${sleeper.pid}\nin a container\n${Number(started) - 1}\npid:[1]\n`);
      expect(() => lockDir(dir, 'x')).toThrow(
        `is being written by process ${sleeper.pid} (in a container) of another pid namespace ` +
          '(pid:[1]: a container sharing the folder, or the host), which this process cannot see: its lock ',
      );
      // Written on another machine sharing the folder (NFS): its pid is not a process here, alive
      // or not, and the default pid namespace has the same name on every machine, so it holds
      // while it is refreshed; the same host name with another boot id is this machine before a
      // reboot, whose processes are all gone.
      const gone = deadPid();
      writeFileSync(lock, `${gone}\non the other host\n${started}\n${ns}\nanother-boot-id\nother-host\n`);
      expect(() => lockDir(dir, 'x')).toThrow(
        `is being written by process ${gone} (on the other host) on another machine (other-host, sharing the folder), ` +
          'which this process cannot see: its lock ',
      );
      writeFileSync(
        lock,
        `${process.pid}\nsame pid, other host\n${started}\n${ns}\nanother-boot-id\nother-host\n`,
      );
      expect(() => lockDir(dir, 'x')).toThrow(
        `is being written by process ${process.pid} (same pid, other host)`,
      );
      // This host name and another boot id, last refreshed before this boot (given, an hour ago,
      // not this machine's uptime): this machine before its reboot, whose processes are all gone.
      writeFileSync(
        lock,
        `${sleeper.pid}\nbefore a reboot\n${started}\n${ns}\nanother-boot-id\n${hostname()}\n`,
      );
      const boot = jest.spyOn(machineBoot, 'at').mockReturnValue(Date.now() - 3_600_000);
      try {
        touchAgo(lock, 3_600_000 + 60_000);
        lockDir(dir, 'x')();
      } finally {
        boot.mockRestore();
      }
      // Refreshed since this boot: another machine of the same name (VMs made from one image).
      writeFileSync(lock, `${sleeper.pid}\nsame name\n${started}\n${ns}\nanother-boot-id\n${hostname()}\n`);
      expect(() => lockDir(dir, 'x')).toThrow(
        `is being written by process ${sleeper.pid} (same name) on another machine of this host name ` +
          `(${hostname()}, boot id another-boot-id, sharing the folder), which this process cannot see: its lock `,
      );
      touchAgo(lock, 11 * 60_000);
      lockDir(dir, 'x')();
      // A lock without a start time (an older normprune's) is trusted while its pid lives.
      writeFileSync(lock, `${sleeper.pid}\nolder\n`);
      expect(() => lockDir(dir, 'x')).toThrow(`is being written by process ${sleeper.pid} (older)`);
      rmSync(lock);
    } finally {
      sleeper.kill();
    }
    // A release after the lock was taken over by another holder leaves that holder's lock.
    const mine = lockDir(dir, 'x');
    rmSync(lock);
    writeFileSync(lock, `${deadPid()}\nother\n`);
    mine();
    expect(readFileSync(lock, 'utf8')).toMatch(/other/);
    expect(readdirSync(dir)).toEqual(['.normprune.lock']);
  });

  // Node's fs module itself (fsutil calls its functions through it), for spies.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const realFs = require('node:fs') as typeof import('node:fs');

  /** Sets the mtime of `file` to `ms` ago. */
  function touchAgo(file: string, ms: number): void {
    const t = new Date(Date.now() - ms);
    utimesSync(file, t, t);
  }

  test('a lock whose holder cannot be checked here (another pid namespace, another machine) holds while its mtime is fresh', () => {
    const dir = join(tmp, 'lock-unseen');
    mkdirSync(dir);
    const lock = join(dir, '.normprune.lock');
    const min = 60_000;
    expect(lockTimings.staleMs).toBe(10 * min);
    const ours = () =>
      expect(readFileSync(lock, 'utf8')).toBe(
        `${process.pid}\nx\n${processStarted(process.pid)}\n${pidNamespace()}\n${bootId()}\n${hostname()}\n`,
      );
    // Two containers on one host sharing a volume: node is pid 1 in both, same boot id, other
    // host names and pid namespaces. The other container's lock with this very pid is its live
    // holder's, not a dead process's of this namespace.
    const container = `${process.pid}\na run in container A\n123\npid:[1]\n${bootId()}\ncontainer-a\n`;
    writeFileSync(lock, container);
    expect(() => lockDir(dir, 'x')).toThrow(
      `${dir} is being written by process ${process.pid} (a run in container A) of another pid namespace ` +
        '(pid:[1], host container-a: a container sharing the folder, or the host), which this process cannot see: ' +
        `its lock ${lock} was last refreshed 0 s ago (a live holder refreshes it every 20 s); wait for it to end, ` +
        'or choose another --out (the lock is taken over once 10 min pass without a refresh, in 10 min; ' +
        `if that process is known to have ended, delete ${lock})`,
    );
    expect(liveLockHolder(dir)).toEqual({
      pid: process.pid,
      what: 'a run in container A',
      where:
        ' of another pid namespace (pid:[1], host container-a: a container sharing the folder, or the host)',
    });
    // Not refreshed for 9 minutes (a long synchronous block, say): still alive.
    touchAgo(lock, 9 * min);
    expect(() => lockDir(dir, 'x')).toThrow(/was last refreshed 9 min ago .* in (59|60) s; if that process/);
    // Not refreshed for 11: its holder is gone, and the lock is taken over.
    touchAgo(lock, 11 * min);
    expect(liveLockHolder(dir)).toBeUndefined();
    lockDir(dir, 'x')();
    // A dead pid in another namespace says nothing either (it may be alive there): fresh, it holds.
    writeFileSync(lock, `${deadPid()}\nin a container\n123\npid:[1]\n`);
    expect(() => lockDir(dir, 'x')).toThrow('(pid:[1]: a container sharing the folder, or the host)');
    touchAgo(lock, 11 * min);
    lockDir(dir, 'x')();
    // Another machine (NFS): held while fresh, taken over once stale, with no hand removal.
    const remote = `${deadPid()}\non the other host\n123\n${pidNamespace()}\nanother-boot-id\nother-host\n`;
    writeFileSync(lock, remote);
    touchAgo(lock, 30_000);
    expect(() => lockDir(dir, 'x')).toThrow(
      `${dir} is being written by process ${remote.split('\n')[0]} (on the other host) on another machine ` +
        '(other-host, sharing the folder), which this process cannot see: its lock ' +
        `${lock} was last refreshed 30 s ago`,
    );
    touchAgo(lock, 11 * min);
    const taken = lockDir(dir, 'x');
    ours();
    taken();
    // A clock ahead of this one (a lock refreshed "in the future") is fresh.
    writeFileSync(lock, remote);
    touchAgo(lock, -min);
    expect(() => lockDir(dir, 'x')).toThrow('was last refreshed 0 s ago');
    rmSync(lock);
  });

  test('where the holder’s pid can be checked (this namespace, this machine), the mtime is not consulted', () => {
    const dir = join(tmp, 'lock-seen');
    mkdirSync(dir);
    const lock = join(dir, '.normprune.lock');
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const here = `${pidNamespace()}\n${bootId()}\n${hostname()}\n`;
      // A live holder that has not refreshed its lock for an hour (an older normprune's): alive.
      writeFileSync(lock, `${sleeper.pid}\nold mtime\n${processStarted(sleeper.pid!)}\n${here}`);
      touchAgo(lock, 3_600_000);
      expect(() => lockDir(dir, 'x')).toThrow(
        `${dir} is being written by process ${sleeper.pid} (old mtime); wait for it to end, or choose another --out ` +
          `(if no normprune run or sweep writes there, delete ${lock})`,
      );
      expect(liveLockHolder(dir)).toEqual({ pid: sleeper.pid, what: 'old mtime', where: '' });
      // A dead holder with a fresh mtime: dead. This pid, not taken by this process: dead.
      for (const pid of [deadPid(), process.pid]) {
        writeFileSync(lock, `${pid}\nfresh mtime\n${processStarted(sleeper.pid!)}\n${here}`);
        lockDir(dir, 'x')();
        expect(existsSync(lock)).toBe(false);
      }
    } finally {
      sleeper.kill();
    }
  });

  test('a held lock’s mtime is refreshed by an unref’d timer, which stops at its release', async () => {
    const dir = join(tmp, 'lock-heartbeat');
    mkdirSync(dir);
    const lock = join(dir, '.normprune.lock');
    const mtime = () => statSync(lock).mtimeMs;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    /** Waits for the heartbeat to bring the lock's mtime within the last 5 s (false after 3 s). */
    const refreshed = async () => {
      for (let i = 0; i < 60; i++, await sleep(50)) if (Date.now() - mtime() < 5000) return true;
      return false;
    };
    const saved = { ...lockTimings };
    lockTimings.heartbeatMs = 20;
    const timers = jest.spyOn(global, 'setInterval');
    try {
      const release = lockDir(dir, 'x');
      expect(timers).toHaveBeenCalledTimes(1);
      expect(timers.mock.calls[0][1]).toBe(20);
      expect((timers.mock.results[0].value as NodeJS.Timeout).hasRef()).toBe(false);
      touchAgo(lock, 3_600_000);
      expect(await refreshed()).toBe(true);
      touchAgo(lock, 3_600_000);
      expect(await refreshed()).toBe(true);
      // Taken over by another process meanwhile (another inode): its lock is not ours to refresh,
      // and two processes may now write the folder: said once.
      const { err: lost } = await withStderr(async () => {
        writeFileSync(`${lock}.new`, `${process.pid}\nanother container's run\n`);
        renameSync(`${lock}.new`, lock);
        touchAgo(lock, 3_600_000);
        await sleep(200);
      });
      expect(Date.now() - mtime()).toBeGreaterThan(3_000_000);
      expect(lost).toBe(
        `normprune: warning: this process's lock ${lock} was taken over by process ${process.pid} (another container's run) ` +
          'while it held it (a process that did not see it refreshed for 10 min takes it over: was this one stopped, ' +
          `or its machine suspended?); another process may now write ${dir} beside this one: stop one of them\n`,
      );
      release();
      expect(readFileSync(lock, 'utf8')).toContain("another container's run");
      rmSync(lock);
      // A release that cannot remove the lock stops refreshing it: it goes stale where it is unseen.
      const second = lockDir(dir, 'x');
      const rm = jest.spyOn(realFs, 'rmSync').mockImplementation(() => {
        throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
      });
      try {
        await withStderr(() => second());
      } finally {
        rm.mockRestore();
      }
      touchAgo(lock, 3_600_000);
      await sleep(200);
      expect(Date.now() - mtime()).toBeGreaterThan(3_000_000);
      rmSync(lock);
      // The folder (or the lock alone) removed under a held lock: said once, and the release is quiet.
      const third = lockDir(dir, 'x');
      const { err: removed } = await withStderr(async () => {
        rmSync(dir, { recursive: true });
        await sleep(200);
      });
      expect(removed).toBe(
        `normprune: warning: this process's lock ${lock} was removed while it held it (a process that did not see it ` +
          'refreshed for 10 min takes it over: was this one stopped, or its machine suspended?); another process may ' +
          `now write ${dir} beside this one: stop one of them\n`,
      );
      expect(third).not.toThrow();
    } finally {
      timers.mockRestore();
      Object.assign(lockTimings, saved);
    }
  });

  test('a lock taken by a relative path is refreshed after the process changes directory', async () => {
    const dir = join(tmp, 'lock-relative');
    mkdirSync(join(dir, 'run'), { recursive: true });
    const lock = join(dir, 'run', '.normprune.lock');
    const cwd = process.cwd();
    const saved = { ...lockTimings };
    lockTimings.heartbeatMs = 20;
    try {
      process.chdir(dir);
      const release = lockDir('run', 'x');
      process.chdir(tmp);
      const t = new Date(Date.now() - 3_600_000);
      utimesSync(lock, t, t);
      const { err } = await withStderr(() => new Promise((r) => setTimeout(r, 200)));
      // Not "was removed": the timer still finds the lock, and refreshes it.
      expect(err).toBe('');
      expect(Date.now() - statSync(lock).mtimeMs).toBeLessThan(5000);
      process.chdir(dir);
      release();
      expect(existsSync(lock)).toBe(false);
    } finally {
      process.chdir(cwd);
      Object.assign(lockTimings, saved);
    }
  });

  test('a process that exits holding a lock is not kept alive by its heartbeat', () => {
    const dir = join(tmp, 'lock-exit');
    mkdirSync(dir);
    const root = join(__dirname, '..', '..', '..');
    const script = `require(${JSON.stringify(join(__dirname, '..', 'src', 'fsutil.ts'))}).lockDir(process.argv[1], 'a child');`;
    const started = Date.now();
    const r = spawnSync(
      process.execPath,
      ['--require', join(root, 'scripts', 'ts-register.cjs'), '-e', script, dir],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    // Well under the 20 s of a heartbeat: the timer did not hold the process.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(readFileSync(join(dir, '.normprune.lock'), 'utf8')).toMatch(/^\d+\na child\n/);
  });

  test('a release that cannot remove the lock (the folder turned read-only) does not throw over the run’s error', async () => {
    const dir = join(tmp, 'lock-readonly');
    mkdirSync(dir);
    const release = lockDir(dir, 'a test');
    const rm = jest.spyOn(realFs, 'rmSync').mockImplementation(() => {
      throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
    });
    let note = '';
    try {
      ({ err: note } = await withStderr(() => expect(release).not.toThrow()));
    } finally {
      rm.mockRestore();
    }
    expect(note).toBe(
      `normprune: note: could not remove the lock ${join(dir, '.normprune.lock')} (EROFS); the next normprune run, sweep or prune there takes it over\n`,
    );
    // A run failing in that folder reports its own error, not the lock's.
    const failing = lockDir(dir, 'another');
    rm.mockImplementation(() => {
      throw Object.assign(new Error('EROFS'), { code: 'EROFS' });
    });
    try {
      await withStderr(() =>
        expect(() => {
          try {
            throw new Error('the run’s own error');
          } finally {
            failing();
          }
        }).toThrow('the run’s own error'),
      );
    } finally {
      rm.mockRestore();
    }
  });

  test('lockDir never moves away a lock another process took after it saw a stale one (the three-way race)', () => {
    const dir = join(tmp, 'lock-race');
    mkdirSync(dir);
    const lock = join(dir, '.normprune.lock');
    writeFileSync(lock, `${deadPid()}\ndead\n`);
    // Between this process seeing the stale lock and acting on it, a second process removes it
    // and a third takes the folder (live pid: the test runner's parent); a fourth would take the
    // path again the moment it is empty.
    const live = process.ppid;
    const fresh = join(dir, 'fresh');
    writeFileSync(fresh, `${live}\ntaken meanwhile\n`);
    const freshIno = statSync(fresh).ino;
    const fourth = join(dir, 'fourth');
    writeFileSync(fourth, `${live}\nfourth\n`);
    let raced = false;
    const race = () => {
      if (raced) return;
      raced = true;
      rmSync(lock);
      realFs.linkSync(fresh, lock);
    };
    const link = realFs.linkSync;
    const rename = realFs.renameSync;
    const spies = [
      jest.spyOn(realFs, 'linkSync').mockImplementation((from, to) => {
        if (String(to).endsWith('.takeover')) race();
        return link(from, to);
      }),
      jest.spyOn(realFs, 'renameSync').mockImplementation((from, to) => {
        if (String(from) !== lock) return rename(from, to);
        race();
        rename(from, to);
        link(fourth, lock);
      }),
    ];
    try {
      expect(() => lockDir(dir, 'x')).toThrow(`is being written by process ${live} (taken meanwhile)`);
    } finally {
      spies.forEach((spy) => spy.mockRestore());
    }
    expect(raced).toBe(true);
    // The third process's lock is where it was, whole: it still holds the folder alone.
    expect(statSync(lock).ino).toBe(freshIno);
    expect(readdirSync(dir).sort()).toEqual(['.normprune.lock', 'fourth', 'fresh']);
  });

  test('lockDir removes a takeover lock its holder died with, and waits for a live one, bounded', () => {
    const dir = join(tmp, 'lock-takeover');
    mkdirSync(dir);
    const lock = join(dir, '.normprune.lock');
    const takeover = join(dir, '.normprune.lock.takeover');
    writeFileSync(lock, `${deadPid()}\ndead\n`);
    writeFileSync(takeover, `${deadPid()}\ndied taking over\n`);
    const release = lockDir(dir, 'x');
    expect(readFileSync(lock, 'utf8')).toBe(
      `${process.pid}\nx\n${processStarted(process.pid)}\n${pidNamespace()}\n${bootId()}\n${hostname()}\n`,
    );
    expect(readdirSync(dir)).toEqual(['.normprune.lock']);
    release();
    // A live process taking over: waited for, then a clear error naming it and the file.
    writeFileSync(lock, `${deadPid()}\ndead\n`);
    writeFileSync(takeover, `${process.ppid}\nrunning\n`);
    // On a clock that moves 25 ms per reading: what is checked is that it kept polling until
    // its next wait would pass the deadline (failing at once would read the clock 3 times,
    // 75 ms), not how long this machine took.
    let clock = 0;
    const now = jest.spyOn(Date, 'now').mockImplementation(() => (clock += 25));
    try {
      expect(() => lockDir(dir, 'x', 300)).toThrow(
        `its stale lock ${lock} is being taken over by process ${process.ppid} for more than 0.3 s; try again ` +
          `(if no normprune run or sweep writes there, delete ${takeover})`,
      );
    } finally {
      now.mockRestore();
    }
    expect(clock).toBeGreaterThanOrEqual(250);
    expect(readdirSync(dir).sort()).toEqual(['.normprune.lock', '.normprune.lock.takeover']);
  });

  test("ourLeftovers: temporary files of ended normprune processes, never the user's or a live one's", () => {
    const dead = deadPid();
    const ours = [
      `.write-probe-${dead}`,
      `.${dead}.3.tmp`,
      `.normprune.lock.${dead}.2.tmp`,
      `.normprune.lock.${dead}.stale`,
      `.normprune.lock.takeover.${dead}.stale`,
    ];
    const others = [
      `.write-probe-${process.pid}`,
      `.normprune.lock.${process.pid}.1.tmp`,
      '.normprune.lock',
      '.normprune.lock.takeover',
      `.normprune.lock.takeover.${dead}.tmp.x`,
      'notes.txt',
      `${dead}.tmp`,
    ];
    expect(ourLeftovers([...others, ...ours])).toEqual(ours);
  });

  test('copyDirAtomic puts back a folder a killed copy left in its .old folder', () => {
    const src = join(tmp, 'recover-src');
    const dest = join(tmp, 'recover-dest');
    mkdirSync(src);
    writeFileSync(join(src, 'a.json'), 'new');
    const left = `${dest}.${deadPid()}.old`;
    mkdirSync(left);
    writeFileSync(join(left, 'NOTES.md'), 'mine');
    copyDirAtomic(src, dest, ['a.json']);
    expect(readFileSync(join(dest, 'a.json'), 'utf8')).toBe('new');
    expect(readFileSync(join(dest, 'NOTES.md'), 'utf8')).toBe('mine');
    expect(existsSync(left)).toBe(false);
  });

  test('writeFileAtomic writes through a symlink and keeps a file’s permissions', () => {
    const target = join(tmp, 'README-target.md');
    const link = join(tmp, 'README-link.md');
    writeFileSync(target, 'old');
    chmodSync(target, 0o444);
    symlinkSync(target, link);
    // A dead process's temp file beside it goes with the next write.
    const leftover = join(tmp, `.${deadPid()}.1.tmp`);
    writeFileSync(leftover, 'partial');
    writeFileAtomic(link, 'new');
    expect(existsSync(leftover)).toBe(false);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(statSync(target).mode & 0o777).toBe(0o444);
  });

  test('writeFileAtomic replaces a file by a rename, and one that fails mid-write leaves the old one whole', () => {
    const f = join(tmp, 'atomic-results.json');
    writeFileSync(f, 'old');
    const ino = statSync(f).ino;
    // A disk that fills after 3 bytes: the partial write goes to the temporary file.
    const fs = realFs;
    const write = jest.spyOn(fs, 'writeFileSync').mockImplementation(((file: string, data: string) => {
      write.mockRestore();
      fs.writeFileSync(file, String(data).slice(0, 3));
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    }) as never);
    expect(() => writeFileAtomic(f, 'a longer new content')).toThrow(/the disk is full/);
    write.mockRestore();
    expect(readFileSync(f, 'utf8')).toBe('old');
    expect(ourLeftovers(readdirSync(tmp))).toEqual([]);
    writeFileAtomic(f, 'new');
    expect(readFileSync(f, 'utf8')).toBe('new');
    expect(statSync(f).ino).not.toBe(ino); // renamed into place, not written in place
  });

  test('writeDirAtomic killed between its renames leaves the old folder for recoverDir, whole', async () => {
    const dir = join(tmp, 'swap-checkpoint');
    mkdirSync(dir);
    writeFileSync(join(dir, 'state.json'), 'old');
    writeFileSync(join(dir, 'weights.bin'), 'old weights');
    const fs = realFs;
    const rename = fs.renameSync;
    const spy = jest.spyOn(fs, 'renameSync').mockImplementation(((from: string, to: string) => {
      if (String(from) === `${dir}.tmp`) throw new Error('killed');
      return rename(from, to);
    }) as never);
    try {
      await expect(
        writeDirAtomic(dir, async (t) => writeFileSync(join(t, 'state.json'), 'new')),
      ).rejects.toThrow('killed');
    } finally {
      spy.mockRestore();
    }
    expect(existsSync(dir)).toBe(false);
    recoverDir(dir);
    expect(readdirSync(dir).sort()).toEqual(['state.json', 'weights.bin']);
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe('old');
    // The next write replaces it as usual.
    await writeDirAtomic(dir, async (t) => writeFileSync(join(t, 'state.json'), 'new'));
    expect(readdirSync(dir)).toEqual(['state.json']);
    expect(existsSync(`${dir}.old`)).toBe(false);
  });

  test('a write error names the file, and a full disk says what to do', () => {
    // /dev/full fails every write with ENOSPC, as a full disk does.
    if (existsSync('/dev/full'))
      expect(() => writeFileNamed('/dev/full', 'x')).toThrow(
        /cannot write \/dev\/full: ENOSPC.*; the disk is full: free some space and run again \(with --resume/,
      );
    expect(() => writeFileAtomic(join(tmp, 'no-such-dir-file', 'x.json'), 'x')).not.toThrow();
    expect(() => writeFileNamed(join(tmp, 'missing', 'x.json'), 'x')).toThrow(
      /cannot write .*missing\/x\.json: ENOENT/,
    );
  });

  test('copyDirAtomic replaces the named entries and keeps the others', () => {
    const src = join(tmp, 'copy-src');
    const dest = join(tmp, 'copy-dest');
    mkdirSync(join(src, 'plots'), { recursive: true });
    writeFileSync(join(src, 'a.json'), 'new');
    writeFileSync(join(src, 'plots', 'p.svg'), 'new');
    mkdirSync(join(dest, 'plots'), { recursive: true });
    writeFileSync(join(dest, 'a.json'), 'old');
    writeFileSync(join(dest, 'plots', 'stale.svg'), 'old');
    writeFileSync(join(dest, 'NOTES.md'), 'mine');
    copyDirAtomic(src, dest, ['a.json', 'plots', 'missing.md']);
    expect(readFileSync(join(dest, 'a.json'), 'utf8')).toBe('new');
    expect(existsSync(join(dest, 'plots', 'stale.svg'))).toBe(false);
    expect(readFileSync(join(dest, 'NOTES.md'), 'utf8')).toBe('mine');
  });
});
