// The run-folder lock (fsutil's lockDir) over its whole life: a lock taken over from a dead or
// stale holder is held as a fresh one is (refreshed, so never judged stale while its holder
// runs), locks written by older normprune versions, and locks from before this machine's reboot.
// No process here waits for a stale time to pass: mtimes are set back by hand, and the heartbeat
// is polled for, so a slow machine makes a test slower, never wrong.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bootId,
  liveLockHolder,
  lockDir,
  lockTimings,
  machineBoot,
  pidNamespace,
  processStarted,
} from '../src/fsutil';

// Node's fs module itself (fsutil calls its functions through it), for spies.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const realFs = require('node:fs') as typeof import('node:fs');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-lock-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const saved = { ...lockTimings };
afterEach(() => Object.assign(lockTimings, saved));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pid of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

/** Sets the mtime of `file` to `ms` ago. */
function touchAgo(file: string, ms: number): void {
  const t = new Date(Date.now() - ms);
  utimesSync(file, t, t);
}

/** Waits for a heartbeat to bring the mtime of `file` within the last 5 s (false after 3 s). */
async function refreshed(file: string): Promise<boolean> {
  for (let i = 0; i < 60; i++, await sleep(50)) if (Date.now() - statSync(file).mtimeMs < 5000) return true;
  return false;
}

/**
 * Runs `f` as a process of another pid namespace of this machine sees the folder (another
 * container sharing it): its /proc/self/ns/pid names another namespace, so it cannot check this
 * namespace's pids, and judges their locks by their heartbeat alone.
 */
function fromAnotherNamespace<T>(f: () => T): T {
  const readlink = realFs.readlinkSync;
  const spy = jest
    .spyOn(realFs, 'readlinkSync')
    .mockImplementation(((path: string, ...rest: []) =>
      path === '/proc/self/ns/pid' ? 'pid:[4026599999]' : readlink(path, ...rest)) as never);
  try {
    return f();
  } finally {
    spy.mockRestore();
  }
}

/** What this process writes into a lock file as `what`'s holder. */
const ours = (what: string) =>
  `${process.pid}\n${what}\n${processStarted(process.pid)}\n${pidNamespace()}\n${bootId()}\n${hostname()}\n`;

describe('a lock taken over', () => {
  test('is refreshed as a fresh one is: a contender that sees its holder only by that never takes it over', async () => {
    lockTimings.heartbeatMs = 20;
    const min = 60_000;
    const dir = mkdtempSync(join(tmp, 'taken-'));
    const lock = join(dir, '.normprune.lock');
    const here = `${pidNamespace()}\n${bootId()}\n${hostname()}\n`;
    // Every kind of lock that is taken over, each last written an hour ago.
    const stale = {
      'a dead process of this namespace': `${deadPid()}\ndead\n123\n${here}`,
      'another container, not refreshed for 10 min': `${process.pid}\nin container A\n123\npid:[1]\n${bootId()}\ncontainer-a\n`,
      'another machine, not refreshed for 10 min': `${deadPid()}\nremote\n123\n${pidNamespace()}\nanother-boot-id\nother-host\n`,
      'an older normprune whose process ended': `${deadPid()}\nolder\n`,
      garbage: 'not a pid\n',
    };
    for (const [kind, content] of Object.entries(stale)) {
      writeFileSync(lock, content);
      touchAgo(lock, 60 * min);
      const release = lockDir(dir, `took over ${kind}`);
      expect(readFileSync(lock, 'utf8')).toBe(ours(`took over ${kind}`));
      const ino = statSync(lock).ino;
      // Missed beats (a long synchronous block) age its mtime; the next beat makes it fresh again, and
      // a process that cannot check this one's pid is refused, however long this one holds it.
      for (let beat = 0; beat < 2; beat++) {
        touchAgo(lock, 60 * min);
        expect(await refreshed(lock)).toBe(true);
        expect(() => fromAnotherNamespace(() => lockDir(dir, 'a contender'))).toThrow(
          `${dir} is being written by process ${process.pid} (took over ${kind}) of another pid namespace ` +
            `(${pidNamespace()}: a container sharing the folder, or the host), which this process cannot see: ` +
            `its lock ${lock} was last refreshed 0 s ago`,
        );
        expect(statSync(lock).ino).toBe(ino);
      }
      release();
      expect(realFs.existsSync(lock)).toBe(false);
    }
  });

  test('by another process is refreshed by it, and refused to a contender that cannot see it, until it ends', async () => {
    lockTimings.heartbeatMs = 20;
    const dir = mkdtempSync(join(tmp, 'taken-by-child-'));
    const lock = join(dir, '.normprune.lock');
    writeFileSync(lock, `${deadPid()}\ndead\n`);
    touchAgo(lock, 3_600_000);
    // A holder of its own, whose heartbeat beats every 20 ms: it takes the stale lock over, says
    // so, and holds it until it is killed.
    const root = join(__dirname, '..', '..', '..');
    const script =
      `const f = require(${JSON.stringify(join(__dirname, '..', 'src', 'fsutil.ts'))});` +
      "f.lockTimings.heartbeatMs = 20; f.lockDir(process.argv[1], 'a child'); console.log('held');" +
      'setInterval(() => {}, 60000);';
    const child = spawn(process.execPath, [
      '--require',
      join(root, 'scripts', 'ts-register.cjs'),
      '-e',
      script,
      dir,
    ]);
    try {
      let out = '';
      child.stdout.on('data', (d) => (out += String(d)));
      let err = '';
      child.stderr.on('data', (d) => (err += String(d)));
      const exited = new Promise((r) => child.on('exit', r));
      for (let i = 0; i < 600 && !out.includes('held') && child.exitCode === null; i++) await sleep(50);
      expect(err).toBe('');
      expect(out).toBe('held\n');
      expect(readFileSync(lock, 'utf8')).toMatch(new RegExp(`^${child.pid}\na child\n`));
      for (let beat = 0; beat < 2; beat++) {
        touchAgo(lock, 3_600_000);
        expect(await refreshed(lock)).toBe(true);
        expect(() => fromAnotherNamespace(() => lockDir(dir, 'a contender'))).toThrow(
          `${dir} is being written by process ${child.pid} (a child) of another pid namespace`,
        );
      }
      // Ended, its lock is a dead process's to one that can check its pid.
      child.kill();
      await exited;
      lockDir(dir, 'x')();
      expect(realFs.existsSync(lock)).toBe(false);
    } finally {
      child.kill();
    }
  });
});

describe('a held lock', () => {
  test('replaced by one given its inode number is neither refreshed nor removed as this process’s', async () => {
    lockTimings.heartbeatMs = 20;
    const dir = mkdtempSync(join(tmp, 'same-inode-'));
    const lock = join(dir, '.normprune.lock');
    const release = lockDir(dir, 'x');
    const ino = statSync(lock).ino;
    // Taken over while this process was stopped (a suspended laptop), released, and taken by a third
    // process, whose lock file the file system gave the inode number this one's had (freed ones are
    // reused): the number alone does not tell the third's lock from this one's. The third runs in
    // another container, where node has this process's pid.
    const third = `${process.pid}\nthe third\n123\npid:[1]\n${bootId()}\ncontainer-b\n`;
    writeFileSync(`${lock}.new`, third);
    realFs.renameSync(`${lock}.new`, lock);
    touchAgo(lock, 3_600_000);
    const stat = realFs.statSync;
    const sameIno = jest.spyOn(realFs, 'statSync').mockImplementation(((path: string, ...rest: []) => {
      const st = stat(path, ...rest);
      return path === lock && st ? Object.assign(st, { ino }) : st;
    }) as never);
    const errs: string[] = [];
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((s) => {
      errs.push(String(s));
      return true;
    });
    try {
      await sleep(200);
      release();
    } finally {
      stderr.mockRestore();
      sameIno.mockRestore();
    }
    // Not refreshed (the third's lock goes stale once its holder stops refreshing it, not kept
    // fresh by this one), the loss said once, and the release leaves the third's lock.
    expect(Date.now() - statSync(lock).mtimeMs).toBeGreaterThan(3_000_000);
    expect(errs.join('')).toBe(
      `normprune: warning: this process's lock ${lock} was taken over by process ${process.pid} (the third) of ` +
        'another pid namespace (pid:[1], host container-b: a container sharing the folder, or the host) while it ' +
        'held it (a process that did not see it refreshed for 10 min takes it over: was this one stopped, or its ' +
        `machine suspended?); another process may now write ${dir} beside this one: stop one of them\n`,
    );
    expect(readFileSync(lock, 'utf8')).toBe(third);
    rmSync(dir, { recursive: true });
  });
});

describe('a lock from before this machine’s reboot', () => {
  // The boot time is given, 5 minutes ago: what is checked does not depend on how long the
  // machine running the tests has been up (a CI container may be seconds old, a desktop months).
  const min = 60_000;
  let sleeper: ReturnType<typeof spawn>;
  beforeAll(() => {
    sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  });
  afterAll(() => sleeper.kill());
  let boot: jest.SpyInstance;
  beforeEach(() => {
    const bootedAt = Date.now() - 5 * min;
    boot = jest.spyOn(machineBoot, 'at').mockReturnValue(bootedAt);
  });
  afterEach(() => boot.mockRestore());

  test('of this host name and another boot id is taken over, though its pid and start time name a live process', () => {
    const dir = mkdtempSync(join(tmp, 'reboot-'));
    const lock = join(dir, '.normprune.lock');
    // After a reboot pids and start times count again from the boot: a live process here may have
    // the very pid and start time that the holder had before it.
    const before = `${sleeper.pid}\nbefore the reboot\n${processStarted(sleeper.pid!)}\n${pidNamespace()}\nanother-boot-id\n${hostname()}\n`;
    writeFileSync(lock, before);
    // Last refreshed 6 minutes ago, a minute before the boot: fresh by its heartbeat (10 minutes),
    // but its holder went down with the machine.
    touchAgo(lock, 6 * min);
    expect(liveLockHolder(dir)).toBeUndefined();
    const release = lockDir(dir, 'x');
    expect(readFileSync(lock, 'utf8')).toBe(ours('x'));
    release();
    // Refreshed 4 minutes ago, after the boot: another machine of this host name (VMs made from one
    // image) sharing the folder, whose lock holds while it is refreshed.
    writeFileSync(lock, before);
    touchAgo(lock, 4 * min);
    expect(() => lockDir(dir, 'x')).toThrow(
      `${dir} is being written by process ${sleeper.pid} (before the reboot) on another machine of this host ` +
        `name (${hostname()}, boot id another-boot-id, sharing the folder), which this process cannot see: its ` +
        `lock ${lock} was last refreshed 4 min ago`,
    );
    // Its heartbeat stopped 11 minutes ago (in this boot, as the boot time is given): stale.
    boot.mockReturnValue(Date.now() - 60 * min);
    touchAgo(lock, 11 * min);
    lockDir(dir, 'x')();
    rmSync(dir, { recursive: true });
  });

  test('is told by its boot id, not by its mtime, where it names one: this boot’s holder is checked by its pid', () => {
    const dir = mkdtempSync(join(tmp, 'reboot-same-boot-'));
    const lock = join(dir, '.normprune.lock');
    // Of this boot but last refreshed before it: a clock set back since, not a reboot.
    writeFileSync(
      lock,
      `${sleeper.pid}\nthis boot\n${processStarted(sleeper.pid!)}\n${pidNamespace()}\n${bootId()}\n${hostname()}\n`,
    );
    touchAgo(lock, 60 * min);
    expect(() => lockDir(dir, 'x')).toThrow(
      `${dir} is being written by process ${sleeper.pid} (this boot); wait for it to end`,
    );
    // Another machine (another host name) is never this one before a reboot: it holds while fresh.
    writeFileSync(lock, `${sleeper.pid}\nremote\n123\n${pidNamespace()}\nanother-boot-id\nother-host\n`);
    touchAgo(lock, 6 * min);
    expect(() => lockDir(dir, 'x')).toThrow(
      `${dir} is being written by process ${sleeper.pid} (remote) on another machine (other-host, sharing the folder)`,
    );
    rmSync(dir, { recursive: true });
  });
});

describe('a lock written by an older normprune, or whose holder’s start time cannot be read', () => {
  // What each version wrote (git log -p -- src/fsutil.ts): the pid alone (0e8071f), then what
  // holds it (4eb0aba), its start time (996556c), its pid namespace (c89add4); the boot id and
  // host name since 9a083af, which this version writes too.
  const min = 60_000;
  const formats = (pid: number, started: string) => ({
    'the pid alone': `${pid}\n`,
    'pid and what': `${pid}\na run of lenet-5\n`,
    'and start time': `${pid}\na run of lenet-5\n${started}\n`,
    'and pid namespace': `${pid}\na run of lenet-5\n${started}\n${pidNamespace()}\n`,
  });
  let sleeper: ReturnType<typeof spawn>;
  let started: string;
  beforeAll(() => {
    sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    started = processStarted(sleeper.pid!);
    expect(started).toMatch(/^\d+$/);
  });
  afterAll(() => sleeper.kill());
  let boot: jest.SpyInstance;
  beforeEach(() => {
    const bootedAt = Date.now() - 5 * min;
    boot = jest.spyOn(machineBoot, 'at').mockReturnValue(bootedAt);
  });
  afterEach(() => boot.mockRestore());

  test('whose process ended is taken over, also one whose pid a later process was given (where it names a start time)', () => {
    const dir = mkdtempSync(join(tmp, 'older-dead-'));
    const lock = join(dir, '.normprune.lock');
    for (const [format, content] of Object.entries(formats(deadPid(), started))) {
      writeFileSync(lock, content);
      const release = lockDir(dir, format);
      expect(readFileSync(lock, 'utf8')).toBe(ours(format));
      release();
    }
    // The live sleeper's pid, with a start time it does not have: an earlier process of that pid.
    writeFileSync(lock, formats(sleeper.pid!, String(Number(started) - 1))['and pid namespace']);
    lockDir(dir, 'x')();
    rmSync(dir, { recursive: true });
  });

  test('whose pid a live process has, with no start time to tell them apart, is refused, saying how to check that process', () => {
    const dir = mkdtempSync(join(tmp, 'older-live-'));
    const lock = join(dir, '.normprune.lock');
    const pid = sleeper.pid!;
    const refusal = (who: string, missing: string) =>
      `${dir} is being written by process ${pid}${who}; wait for it to end, or choose another --out (its lock ${lock}, ` +
      `written by an older normprune or without /proc, records no ${missing}, so process ${pid} may be another ` +
      `program, given that pid after the lock's holder ended: if \`ps -p ${pid}\` shows no normprune run, sweep or ` +
      `prune, delete ${lock})`;
    const older = formats(pid, started);
    const expected = {
      'the pid alone': refusal('', 'start time'),
      'pid and what': refusal(' (a run of lenet-5)', 'start time'),
      'and start time': refusal(' (a run of lenet-5)', 'pid namespace'),
      // A start time of this pid namespace: checked, and this is the holder's.
      'and pid namespace':
        `${dir} is being written by process ${pid} (a run of lenet-5); wait for it to end, or choose another ` +
        `--out (if no normprune run or sweep writes there, delete ${lock})`,
    };
    for (const format of Object.keys(older) as (keyof typeof older)[]) {
      writeFileSync(lock, older[format]);
      expect(() => lockDir(dir, 'x')).toThrow(expected[format]);
      // What report, eval and prune --out say of it: the same way to check that process.
      const check = expected[format].match(/--out \((its lock .*)\)$/)?.[1];
      expect(liveLockHolder(dir)).toEqual({
        pid,
        what: format === 'the pid alone' ? '' : 'a run of lenet-5',
        where: '',
        ...(format === 'and pid namespace' ? {} : { check }),
      });
      if (format !== 'and pid namespace') expect(check).toMatch(/ps -p/);
      // Untouched by the refusal.
      expect(readFileSync(lock, 'utf8')).toBe(older[format]);
    }
    rmSync(dir, { recursive: true });
  });

  test('a current lock whose holder’s start time cannot be read here is refused with the same advice', () => {
    const dir = mkdtempSync(join(tmp, 'unreadable-start-'));
    const lock = join(dir, '.normprune.lock');
    const pid = sleeper.pid!;
    const advice = (why: string) =>
      `${dir} is being written by process ${pid} (a run); wait for it to end, or choose another --out (${why}, so ` +
      `process ${pid} may be another program, given that pid after the lock's holder ended: if \`ps -p ${pid}\` ` +
      `shows no normprune run, sweep or prune, delete ${lock})`;
    writeFileSync(lock, `${pid}\na run\n${started}\n${pidNamespace()}\n${bootId()}\n${hostname()}\n`);
    // /proc mounted with hidepid: other users' processes are not listed there.
    const read = realFs.readFileSync;
    const hidden = jest.spyOn(realFs, 'readFileSync').mockImplementation(((path: string, ...rest: []) => {
      if (path === `/proc/${pid}/stat`) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return read(path, ...rest);
    }) as never);
    try {
      expect(() => lockDir(dir, 'x')).toThrow(
        advice(`the start time of process ${pid} cannot be read here, /proc hides it`),
      );
    } finally {
      hidden.mockRestore();
    }
    // No /proc at all (macOS): no pid namespace of this process to read either.
    const readlink = jest.spyOn(realFs, 'readlinkSync').mockImplementation(() => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    });
    try {
      expect(() => lockDir(dir, 'x')).toThrow(
        advice(`this system has no /proc to read the start time of process ${pid} from`),
      );
    } finally {
      readlink.mockRestore();
    }
    // Readable again: checked, and it is the holder's.
    expect(() => lockDir(dir, 'x')).toThrow(`(if no normprune run or sweep writes there, delete ${lock})`);
    rmSync(dir, { recursive: true });
  });

  test('last written before this machine booted is taken over, whatever process has its pid since', () => {
    const dir = mkdtempSync(join(tmp, 'older-reboot-'));
    const lock = join(dir, '.normprune.lock');
    // The sleeper has the pid, even the start time, that the holder had before the reboot.
    for (const [format, content] of Object.entries(formats(sleeper.pid!, started))) {
      writeFileSync(lock, content);
      touchAgo(lock, 6 * min);
      expect(liveLockHolder(dir)).toBeUndefined();
      const release = lockDir(dir, format);
      expect(readFileSync(lock, 'utf8')).toBe(ours(format));
      release();
      // Written since the boot: refused as above.
      writeFileSync(lock, content);
      touchAgo(lock, 4 * min);
      expect(() => lockDir(dir, 'x')).toThrow(`${dir} is being written by process ${sleeper.pid}`);
    }
    // One of another pid namespace (a container), whose holder never refreshed it (an older
    // normprune has no heartbeat): before the boot, gone; since, held until 10 minutes pass.
    const container = `${sleeper.pid}\nin a container\n${started}\npid:[1]\n`;
    writeFileSync(lock, container);
    touchAgo(lock, 4 * min);
    expect(() => lockDir(dir, 'x')).toThrow(
      `${dir} is being written by process ${sleeper.pid} (in a container) of another pid namespace`,
    );
    touchAgo(lock, 6 * min);
    lockDir(dir, 'x')();
    // A lock naming no boot id but another host name (written where there is no /proc) is another
    // machine's, not this one's before the boot.
    writeFileSync(lock, `${sleeper.pid}\nremote\n\n\n\nother-host\n`);
    touchAgo(lock, 6 * min);
    expect(() => lockDir(dir, 'x')).toThrow(`${dir} is being written by process ${sleeper.pid} (remote)`);
    rmSync(dir, { recursive: true });
  });
});
