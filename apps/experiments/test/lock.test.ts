// The run-folder lock (fsutil's lockDir) over its whole life: a lock taken over from a dead or
// stale holder is held as a fresh one is (refreshed, so never judged stale while its holder
// runs), locks written by older normprune versions, and locks from before this machine's reboot.
// No process here waits for a stale time to pass: mtimes are set back by hand, and the heartbeat
// is polled for, so a slow machine makes a test slower, never wrong.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootId, lockDir, lockTimings, pidNamespace, processStarted } from '../src/fsutil';

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
