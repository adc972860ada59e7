// Every output file is written to a temporary name and renamed into place, so
// an interrupted or failed run never leaves a half-written file behind.
import {
  accessSync,
  chmodSync,
  constants,
  cpSync,
  existsSync,
  linkSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname, uptime } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { makeDirs, processGone } from '@normprune/runtime';

export { makeDirs };

let counter = 0;

/**
 * Writes a file atomically (temp file in the same folder, then rename). A
 * symlink is written through (its target is replaced, the link stays), and an
 * existing file keeps its permissions. A failed write leaves no temp file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  let target = file;
  let mode: number | undefined;
  try {
    target = realpathSync(file);
    mode = statSync(target).mode & 0o7777;
  } catch {
    makeDirs(dirname(file)); // a new file
  }
  const tmp = join(dirname(target), `.${process.pid}.${++counter}.tmp`);
  try {
    try {
      writeFileNamed(tmp, data);
    } catch (e) {
      // The temp file is ours, not the user's: name the file and the folder that refused it.
      const cause = (e as Error).cause as NodeJS.ErrnoException | undefined;
      if (!['EACCES', 'EPERM', 'EROFS'].includes(cause?.code ?? '')) throw e;
      throw new Error(`cannot write ${file}: ${dirname(target)} is not writable (${cause!.code})`, { cause });
    }
    if (mode !== undefined) chmodSync(tmp, mode);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  // A process killed mid-write left its temp file here: the next write clears it.
  for (const f of ourLeftovers(readdirSync(dirname(target))))
    rmSync(join(dirname(target), f), { force: true });
}

/**
 * `writeFileSync` whose errors name the file (Node's ENOSPC says only "write"),
 * and for a full disk, what to do.
 */
export function writeFileNamed(file: string, data: string | Uint8Array): void {
  try {
    writeFileSync(file, data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      `cannot write ${file}: ${(e as Error).message}` +
        (code === 'ENOSPC' || code === 'EDQUOT'
          ? '; the disk is full: free some space and run again (with --resume if a checkpoint was written)'
          : ''),
      { cause: e },
    );
  }
}

/** Writes JSON atomically, pretty-printed. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Replaces folder `dir` by the folder `fill` writes into a temporary sibling
 * (`dir.tmp`, or `at.tmp`: on the same file system, say in a dot-named folder):
 * the old copy stays (in `dir.old`, or `at.old`) until the new one is complete.
 * Entries of the old copy that `keep` accepts are carried over.
 */
export async function writeDirAtomic(
  dir: string,
  fill: (tmp: string) => Promise<void>,
  keep: (name: string) => boolean = () => false,
  at: { tmp: string; old: string } = { tmp: `${dir}.tmp`, old: `${dir}.old` },
): Promise<void> {
  const { tmp, old } = at;
  recoverDir(dir, old);
  rmSync(tmp, { recursive: true, force: true });
  makeDirs(tmp);
  try {
    await fill(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // a failed write (a full disk) leaves nothing
    throw e;
  }
  swapDir(tmp, dir, old, keep);
}

/**
 * Puts the complete folder `tmp` in the place of `dir`, after carrying over
 * the entries of `dir` that `keep` accepts (a user's files); the old copy
 * stays, as `old`, until the new one is in place.
 */
function swapDir(tmp: string, dir: string, old: string, keep: (name: string) => boolean): void {
  try {
    if (existsSync(dir))
      for (const name of readdirSync(dir))
        if (keep(name) && !existsSync(join(tmp, name)))
          cpSync(join(dir, name), join(tmp, name), { recursive: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/**
 * Puts back a folder `writeDirAtomic` was replacing when the process died
 * between its two renames: `dir` gone, its complete old copy in `old`.
 */
export function recoverDir(dir: string, old = `${dir}.old`): void {
  if (!existsSync(dir) && existsSync(old)) renameSync(old, dir);
}

/** Removes a folder so that a process killed meanwhile never leaves it half removed: renamed away first. */
export function removeDir(dir: string): void {
  const gone = `${dir}.removing`;
  rmSync(gone, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, gone);
  rmSync(gone, { recursive: true, force: true });
}

/**
 * Replaces folder `dest` by a copy of the entries `names` of `src` that exist,
 * atomically (the old copy stays until the new one is complete); entries of
 * `dest` not among `names` (a user's notes) are kept. A folder among `names`
 * with an entry in `owned` is merged, not replaced: of its old files, only those
 * `owned[name]` accepts (the files the copy writes there) go; others (a user's
 * plot beside the export's) are kept. `fill` may change the copy, given the
 * temporary folder that holds it, before it is put in place.
 */
export function copyDirAtomic(
  src: string,
  dest: string,
  names: readonly string[],
  owned: Readonly<Record<string, (file: string) => boolean>> = {},
  fill: (tmp: string) => void = () => {},
): void {
  const tmp = `${dest}.${process.pid}.tmp`;
  const old = `${dest}.${process.pid}.old`;
  // A copy killed between its renames left `dest` in its .old folder: put back; other leftovers go.
  const parent = dirname(dest);
  const base = basename(dest);
  for (const f of existsSync(parent) ? readdirSync(parent) : []) {
    const m = f.startsWith(`${base}.`) ? /^\.(\d+)\.(old|tmp)$/.exec(f.slice(base.length)) : null;
    if (!m || !processGone(Number(m[1]))) continue;
    if (m[2] === 'old' && !existsSync(dest)) renameSync(join(parent, f), dest);
    else rmSync(join(parent, f), { recursive: true, force: true });
  }
  rmSync(tmp, { recursive: true, force: true });
  try {
    makeDirs(tmp);
    for (const name of names)
      if (existsSync(join(src, name))) cpSync(join(src, name), join(tmp, name), { recursive: true });
    for (const [name, ours] of Object.entries(owned)) {
      const there = join(dest, name);
      if (!names.includes(name) || !statSync(there, { throwIfNoEntry: false })?.isDirectory()) continue;
      for (const f of readdirSync(there))
        if (!ours(f) && !existsSync(join(tmp, name, f))) {
          makeDirs(join(tmp, name));
          cpSync(join(there, f), join(tmp, name, f), { recursive: true });
        }
    }
    fill(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  swapDir(tmp, dest, old, (name) => !names.includes(name));
}

/** The lock file a run holds in its folder while it writes there. */
export const LOCK_FILE = '.normprune.lock';

/**
 * The lock on removing a stale {@link LOCK_FILE}: only its holder may move a
 * lock file away, so that a lock another process has just taken is never
 * moved away by a third that still saw the stale one.
 */
export const TAKEOVER_FILE = `${LOCK_FILE}.takeover`;

/** How long {@link lockDir} waits for another process's takeover of a stale lock, in all. */
const TAKEOVER_WAIT_MS = 5000;

/**
 * The heartbeat of a lock whose holder cannot be checked from here. A holder on another machine
 * (NFS), or in another pid namespace (another container sharing the folder, or its host), has a
 * pid that means nothing here: `kill(pid, 0)` and /proc answer about this namespace's process of
 * that pid. So a holder refreshes its lock file's mtime every `heartbeatMs` while it holds it, and
 * such a lock is alive while its mtime is less than `staleMs` old, then stale (taken over).
 *
 * The refresh is a timer, which fires only between synchronous chunks of work. A training step
 * on wasm yields each step, but an evaluation batch, a latency call or a model save does not:
 * a tiny lenet-5 run blocked the event loop for 2.1 s at most (2026-12-02, 2 cores; its
 * MNIST load 1.5 s), and a full-width VGG-16 call at batch 256 takes about 4 s on wasm (see
 * LATENCY_BUDGET in measure.ts), several times that on a loaded machine. 10 minutes is 30
 * missed heartbeats and over 100 times the longest such block; the cost is that a holder which
 * died (or a machine which went down) keeps the folder for up to 10 minutes, or until its lock
 * is deleted by hand. A process stopped longer than that (Ctrl-Z, a suspended laptop) loses its
 * lock. A lock that an older normprune (no heartbeat) wrote in another namespace or on another
 * machine looks stale 10 minutes after it was taken. Clocks of machines sharing a folder are
 * assumed to agree to well within the limit (NTP). Tests lower both. @internal
 */
export const lockTimings = { heartbeatMs: 20_000, staleMs: 10 * 60_000 };

/** A lock's holder, as {@link readLock} reads it. */
interface LockHolder {
  pid: number | undefined;
  what: string;
  started: string;
  namespace: string;
  boot: string;
  host: string;
  ino: number;
  /** The file's mtime (ms), which its holder refreshes: see {@link lockTimings}. */
  mtimeMs: number;
}

/**
 * A lock file's holder: its pid, what it does, when it started (see {@link processStarted}), the
 * pid namespace both are of (see {@link pidNamespace}), the machine (see {@link bootId}, and its
 * host name), and the file's inode (to tell two locks apart).
 */
function readLock(file: string): LockHolder | undefined {
  try {
    const { ino, mtimeMs } = statSync(file);
    const [pidText, what = '', started = '', namespace = '', boot = '', host = ''] = readFileSync(
      file,
      'utf8',
    ).split('\n');
    const pid = Number.parseInt(pidText, 10);
    return {
      pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
      what,
      started,
      namespace,
      boot,
      host,
      ino,
      mtimeMs,
    };
  } catch {
    return undefined; // gone meanwhile
  }
}

/** This process's boot id and host name, read once: neither changes while it runs. */
let machine: { boot: string; host: string } | undefined;

function thisMachine(): { boot: string; host: string } {
  if (machine) return machine;
  let boot = '';
  let host = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    /* no /proc (macOS, Windows) */
  }
  try {
    host = hostname().replace(/\s+/g, ' ');
  } catch {
    /* unreadable */
  }
  return (machine = { boot, host });
}

/**
 * This boot of this machine (/proc/sys/kernel/random/boot_id, which containers share with their
 * host), '' where there is none: a pid means something only on the machine that wrote it, and
 * the default pid namespace has one name on every Linux machine, so two machines sharing a
 * folder (NFS) tell each other's locks apart by it.
 */
export function bootId(): string {
  return thisMachine().boot;
}

/** This machine's host name, '' if it cannot be read (kept to one line). */
function hostName(): string {
  return thisMachine().host;
}

/** What {@link lockDir} writes into a lock file for this process. */
export function lockContent(what: string): string {
  return `${process.pid}\n${what}\n${processStarted(process.pid)}\n${pidNamespace()}\n${bootId()}\n${hostName()}\n`;
}

/**
 * The lock's holder runs on another machine (another boot id, unless the lock is from before
 * this machine's reboot, see {@link beforeReboot}; where there are no boot ids, another host
 * name): its pid is not a process here.
 */
function onOtherMachine(holder: LockHolder): boolean {
  const { boot, host } = thisMachine();
  if (holder.boot && boot) return holder.boot !== boot && !beforeReboot(holder);
  return Boolean(holder.host && host && holder.host !== host && holder.boot === boot);
}

/**
 * This machine rebooted since the lock was last refreshed, so its holder is gone: another boot
 * id, this host name, and an mtime before this boot. A lock of this host name and another boot id
 * refreshed since this boot is another machine's of the same name (VMs made from one image are
 * often all `ubuntu` or `localhost`) sharing the folder: see {@link onOtherMachine}. A lock that
 * names no boot id (an older normprune's, which named no machine either, or one written where
 * there is no /proc) is this machine's when it names this host name or none, as its pid is taken
 * for one here (see {@link holderAlive}): before this boot, its holder is gone too, whatever
 * process has its pid since (an older normprune's lock names no start time to tell them apart,
 * so it held while any process had the pid).
 */
function beforeReboot(holder: LockHolder): boolean {
  const { boot, host } = thisMachine();
  if (holder.mtimeMs >= machineBoot.at()) return false;
  if (holder.boot && boot) return holder.boot !== boot && holder.host === host;
  return !holder.host || holder.host === host;
}

/**
 * When this machine booted (ms since the epoch; its host's, in a container): now less its uptime.
 * An object, so that tests give a boot time of their own instead of depending on how long the
 * machine they run on has been up. @internal
 */
export const machineBoot = { at: (): number => Date.now() - uptime() * 1000 };

/**
 * The lock was written in another pid namespace of this machine (another container sharing the
 * folder, or its host), both namespaces known: its pid and start time are that namespace's, and
 * this namespace's process of that pid (this process, even: node is pid 1 in many containers)
 * is not its holder.
 */
function inOtherNamespace(holder: LockHolder): boolean {
  const ns = pidNamespace();
  return Boolean(holder.namespace && ns && holder.namespace !== ns);
}

/** Where a lock's holder runs when its pid cannot be checked from here, else undefined. */
function unseenHolder(holder: LockHolder): 'machine' | 'namespace' | undefined {
  if (onOtherMachine(holder)) return 'machine';
  return inOtherNamespace(holder) ? 'namespace' : undefined;
}

/** How long ago a lock's holder last refreshed it (its mtime), in ms; negative for a clock ahead. */
function sinceHeartbeat(holder: LockHolder): number {
  return Date.now() - holder.mtimeMs;
}

/**
 * When process `pid` started, as the kernel counts it (clock ticks after boot, field 22 of
 * /proc/PID/stat), to tell a lock's holder from a later process given its pid; '' where there is
 * no /proc (macOS, Windows) or the process is gone.
 */
export function processStarted(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name, which may hold spaces and parentheses: state is field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3] ?? '';
  } catch {
    return '';
  }
}

/**
 * This process's pid namespace (`pid:[4026531836]`, from /proc/self/ns/pid), '' where there is none:
 * a pid and a start time mean something only in the namespace that wrote them (a container and
 * its host sharing a folder see one process under two pids, and another process under the same).
 */
export function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

/** Folders this process holds the lock of (a lock with this pid elsewhere is a dead process's). */
const heldHere = new Set<string>();

/**
 * Whether a lock file's holder is alive. A holder on another machine or in another pid namespace
 * cannot be seen from here: it is alive while it refreshes its lock (see {@link lockTimings}). A
 * pid of this process counts only for a lock taken here (a lock of this pid that this process
 * did not take is an earlier process's, in this namespace); a lock with no readable pid is garbage.
 */
function holderAlive(holder: LockHolder, held: boolean): boolean {
  if (holder.pid === undefined) return false;
  if (beforeReboot(holder)) return false;
  if (unseenHolder(holder)) return sinceHeartbeat(holder) < lockTimings.staleMs;
  if (holder.pid === process.pid) return held;
  if (processGone(holder.pid)) return false;
  // A live process with the holder's pid but another start time was given the pid after the
  // holder died. A lock written without a start time or pid namespace (an older normprune's), or
  // where there is no /proc, is trusted while its pid lives: its refusal says so (see pidOnly).
  if (pidOnly(holder)) return true;
  return processStarted(holder.pid) === holder.started;
}

/**
 * Why a live process of a lock's pid is taken for its holder unchecked, if it is: nothing tells
 * the two apart, as the lock records no start time or pid namespace (`lock`: an older
 * normprune's, or one written where there is no /proc), or this system has no /proc (`system`),
 * or hides the process's start time (`hidden`: /proc mounted with `hidepid`). That process may be
 * another program given the pid after the holder ended, so a refusal by such a lock says how to
 * check (see {@link lockedMessage}). For a holder this process can see (see {@link unseenHolder}).
 */
function pidOnly(holder: LockHolder): 'lock' | 'system' | 'hidden' | undefined {
  if (!pidNamespace()) return 'system';
  if (!holder.started || !holder.namespace) return 'lock';
  return holder.pid !== undefined && !processStarted(holder.pid) ? 'hidden' : undefined;
}

/**
 * The live process holding `dir`'s lock, if any (not this process's own locks): its pid, what it
 * does, and where it runs if this process cannot see it (see {@link holderPlace}; '' if it can).
 */
export function liveLockHolder(
  dir: string,
): { pid: number; what: string; where: string; check?: string } | undefined {
  const file = join(dir, LOCK_FILE);
  const holder = readLock(file);
  if (!holder || holder.pid === undefined || !holderAlive(holder, heldHere.has(file))) return undefined;
  const where = holderPlace(holder);
  const check = where ? undefined : uncheckedHolder(holder, file);
  return { pid: holder.pid, what: holder.what, where, ...(check ? { check } : {}) };
}

/**
 * For a lock whose live process of its pid is taken for its holder unchecked (see
 * {@link pidOnly}), why, and how to tell (`ps -p PID`) and what to do, for a refusal; else
 * undefined. For a holder this process can see.
 */
function uncheckedHolder(holder: LockHolder, file: string): string | undefined {
  const unchecked = holder.pid === process.pid ? undefined : pidOnly(holder);
  if (!unchecked) return undefined;
  const pid = holder.pid!;
  const why = {
    lock: `its lock ${file}, written by an older normprune or without /proc, records no ${holder.started ? 'pid namespace' : 'start time'}`,
    system: `this system has no /proc to read the start time of process ${pid} from`,
    hidden: `the start time of process ${pid} cannot be read here, /proc hides it`,
  }[unchecked];
  return (
    `${why}, so process ${pid} may be another program, given that pid after the lock's holder ended: ` +
    `if \`ps -p ${pid}\` shows no normprune run, sweep or prune, delete ${file}`
  );
}

/**
 * `path` (resolved) and its parents that do not exist, deepest first, and the nearest part of the
 * path that does: what making folder `path` would create, and where it would start.
 */
export function missingFolders(path: string): { missing: string[]; existing: string } {
  const missing: string[] = [];
  let existing = resolve(path);
  for (; !existsSync(existing) && dirname(existing) !== existing; existing = dirname(existing))
    missing.push(existing);
  return { missing, existing };
}

/**
 * The live process holding the lock of a folder `path` lies in, if any: any folder above it, by
 * its path as written and by where symbolic links lead (a run's `plots/sub`, a sweep point's
 * `model/`, a link into a run's folder). `path` itself is not one of them, nor need it exist.
 */
export function liveLockAbove(
  path: string,
): { dir: string; pid: number; what: string; where: string; check?: string } | undefined {
  const dirs = new Set<string>();
  const above = (p: string): void => {
    for (let d = dirname(p); !dirs.has(d); d = dirname(d)) {
      dirs.add(d);
      if (dirname(d) === d) break;
    }
  };
  const target = resolve(path);
  above(target);
  // Where links lead: the nearest part of the path that exists, resolved.
  const { existing } = missingFolders(target);
  try {
    const real = realpathSync(existing);
    if (existing !== target) dirs.add(real);
    above(real);
  } catch {
    /* unreadable: the path as written is what there is */
  }
  for (const dir of dirs) {
    const holder = liveLockHolder(dir);
    if (holder) return { dir, ...holder };
  }
  return undefined;
}

/**
 * Removes the lock file at `file` if it is still the one with inode `ino`: it is
 * moved aside, checked by inode, and given back if it is another. For
 * {@link LOCK_FILE} only a takeover holder calls it, after checking the inode,
 * so the give-back is never needed there. For a stale {@link TAKEOVER_FILE}
 * (its holder died in the microseconds it holds it) the give-back is the
 * fallback, and fails only if a third process took the takeover lock in
 * between.
 */
function removeIfSame(file: string, ino: number): void {
  const grave = `${file}.${process.pid}.stale`;
  try {
    renameSync(file, grave);
  } catch {
    return; // gone meanwhile
  }
  if (readLock(grave)?.ino === ino) {
    rmSync(grave, { force: true });
    return;
  }
  try {
    linkSync(grave, file);
    rmSync(grave, { force: true });
  } catch {
    /* the path is taken again: the other file stays in `grave`, a leftover of this pid */
  }
}

/**
 * Whether the lock file `file` is still the one this process linked into place: inode `ino`,
 * holding `content`; throws what reading it throws (ENOENT once it is gone). The inode alone does
 * not tell: a file system gives a freed inode number to a later file, so a lock taken over,
 * released and taken again may have this one's number. Its heartbeat would then keep a third
 * process's lock fresh after that process died, and say nothing of the loss; its release would
 * remove it where the third's pid is this one's (node is pid 1 in many containers).
 */
function stillOurs(file: string, ino: number, content: string): boolean {
  return statSync(file).ino === ino && readFileSync(file, 'utf8') === content;
}

/**
 * Refreshes the mtime of the lock file `file` (inode `ino`, holding `content`) every
 * {@link lockTimings}.heartbeatMs until it is cleared, so that a process which cannot see this one
 * (on another machine, in another pid namespace) knows it alive. Unref'd: it never keeps the
 * process running. A lock that is gone, of another inode or with other content is no longer this
 * process's: taken over (by a process that did not see it refreshed for
 * {@link lockTimings}.staleMs: this one was stopped, or its machine suspended) or deleted by hand.
 * Then it says so once on stderr, since two processes may now write the folder, and stops; other
 * errors (not writable) are ignored.
 */
function startHeartbeat(file: string, ino: number, content: string): NodeJS.Timeout {
  const timer = setInterval(() => {
    let lost: string | undefined;
    try {
      if (stillOurs(file, ino, content)) {
        const now = new Date();
        utimesSync(file, now, now);
        return;
      }
      const holder = readLock(file);
      lost = holder
        ? `was taken over by ${holderText({ ...holder, where: holderPlace(holder) })}`
        : 'was removed';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return; // not writable: nothing to refresh
      lost = 'was removed';
    }
    clearInterval(timer);
    process.stderr.write(
      `normprune: warning: this process's lock ${file} ${lost} while it held it (a process that did not see it ` +
        `refreshed for ${duration(lockTimings.staleMs)} takes it over: was this one stopped, or its machine suspended?); ` +
        `another process may now write ${dirname(file)} beside this one: stop one of them\n`,
    );
  }, lockTimings.heartbeatMs);
  timer.unref();
  return timer;
}

/** Whole minutes, or seconds below 2 minutes: `10 min`, `45 s`. */
function duration(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : `${Math.max(0, Math.round(ms / 1000))} s`;
}

/** A lock's holder in a message: `process 12 (a run of lenet-5)`, and where it runs if unseen. */
export function holderText(holder: { pid?: number; what: string; where: string }): string {
  return `process ${holder.pid ?? '?'}${holder.what ? ` (${holder.what})` : ''}${holder.where}`;
}

/**
 * Where a lock's holder runs, for a message, when this process cannot see it: ` on another
 * machine (...)` or ` of another pid namespace (...)`; '' where its pid is checked here.
 */
function holderPlace(holder: LockHolder): string {
  const where = unseenHolder(holder);
  if (where === 'machine')
    return holder.host && holder.host === hostName()
      ? ` on another machine of this host name (${holder.host}, boot id ${holder.boot}, sharing the folder)`
      : ` on another machine (${holder.host || `boot id ${holder.boot}`}, sharing the folder)`;
  if (where !== 'namespace') return '';
  const host = holder.host && holder.host !== hostName() ? `, host ${holder.host}` : '';
  return ` of another pid namespace (${holder.namespace}${host}: a container sharing the folder, or the host)`;
}

/**
 * The refusal of folder `dir`, whose lock `file` a live `holder` holds: who, where if this
 * process cannot see it (another machine, another pid namespace) and then how fresh its
 * heartbeat is and when its lock goes stale, and what to do.
 */
function lockedMessage(dir: string, file: string, holder: LockHolder): string {
  const place = holderPlace(holder);
  if (!place) {
    const who =
      holder.pid === process.pid
        ? `this process${holder.what ? ` (${holder.what})` : ''}`
        : holderText({ ...holder, where: '' });
    const check = uncheckedHolder(holder, file);
    if (!check)
      return (
        `${dir} is being written by ${who}; wait for it to end, or choose another --out ` +
        `(if no normprune run or sweep writes there, delete ${file})`
      );
    // An older normprune's lock, say: the process of its pid may not be its holder. What to check.
    return `${dir} is being written by ${who}; wait for it to end, or choose another --out (${check})`;
  }
  const since = sinceHeartbeat(holder);
  return (
    `${dir} is being written by ${holderText({ ...holder, where: place })}, which this process cannot see: its lock ${file} ` +
    `was last refreshed ${duration(since)} ago (a live holder refreshes it every ${duration(lockTimings.heartbeatMs)}); ` +
    `wait for it to end, or choose another --out (the lock is taken over once ${duration(lockTimings.staleMs)} ` +
    `pass without a refresh, in ${duration(lockTimings.staleMs - since)}; if that process is known to have ended, ` +
    `delete ${file})`
  );
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Claims `dir` for this process until the returned function is called: a
 * second writer (another process, or another call in this one) is refused,
 * naming the holder; a lock left by a process that died is taken over, also
 * when a later process has been given its pid (the lock records its holder's
 * start time and pid namespace, where /proc gives them; a lock without them,
 * an older normprune's, holds while a process of its pid runs, and its refusal
 * says how to check that process), and one last refreshed before this machine
 * booted (see {@link beforeReboot}). A holder whose pid
 * cannot be checked from here (on another machine sharing the folder, or in
 * another pid namespace: another container) is alive while it refreshes its
 * lock, as this process does while it holds one (see {@link lockTimings}). The
 * lock is written whole under a temporary name and linked into place, so it is
 * never seen half written. A stale lock is removed only under
 * {@link TAKEOVER_FILE}, one process at a time, so that two processes taking
 * over one stale lock never both end up holding the folder. The release
 * removes the lock only while it is still this process's. `waitMs` bounds the
 * wait for other processes' takeovers.
 */
export function lockDir(dir: string, what: string, waitMs = TAKEOVER_WAIT_MS): () => void {
  const file = join(dir, LOCK_FILE);
  const takeover = join(dir, TAKEOVER_FILE);
  const mine = `${file}.${process.pid}.${++counter}.tmp`;
  const content = lockContent(what);
  writeFileNamed(mine, content);
  const deadline = Date.now() + waitMs;
  try {
    for (let wait = 1; ; wait = Math.min(2 * wait, 100)) {
      if (Date.now() > deadline)
        throw new Error(
          `${dir}: could not take its lock ${file} in ${waitMs / 1000} s (other processes keep taking it, ` +
            `or it cannot be removed); try again (if no normprune run or sweep writes there, delete ${file})`,
        );
      try {
        linkSync(mine, file);
        const ino = statSync(file).ino;
        heldHere.add(file);
        // Its absolute path: a relative `dir` would name another file once the process changes directory.
        const heartbeat = startHeartbeat(resolve(file), ino, content);
        // Never throws: it runs in `finally` blocks, where it would hide the error that ended the run
        // (a folder turned read-only, say), and a lock left behind is taken over once we exit.
        return () => {
          clearInterval(heartbeat); // a lock it could not remove goes stale, also where it is unseen
          try {
            if (heldHere.delete(file) && stillOurs(file, ino, content)) rmSync(file, { force: true });
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // removed meanwhile: nothing to release
            process.stderr.write(
              `normprune: note: could not remove the lock ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ` +
                'the next normprune run, sweep or prune there takes it over\n',
            );
          }
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = readLock(file);
      if (holder === undefined) continue; // released meanwhile
      if (holderAlive(holder, heldHere.has(file))) throw new Error(lockedMessage(dir, file, holder));
      // Stale. Under the takeover lock, a path that still holds the stale lock holds it until
      // it is moved away: its dead holder never releases it, nobody links over an existing
      // file, and only a takeover holder removes one. So it is checked again once the
      // takeover lock is held (another process may have replaced it with a fresh lock since, or a
      // holder seen only by its heartbeat, blocked for a while, refreshed it).
      let took = false;
      try {
        linkSync(mine, takeover);
        took = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      if (took) {
        try {
          const now = readLock(file);
          if (now?.ino === holder.ino && !holderAlive(now, heldHere.has(file)))
            removeIfSame(file, holder.ino);
        } finally {
          if (readLock(takeover)?.ino === statSync(mine).ino) rmSync(takeover, { force: true });
        }
        continue;
      }
      // Another process is taking over, or one died doing so (its takeover lock is then stale).
      const other = readLock(takeover);
      if (other === undefined) continue;
      if (!holderAlive(other, false)) {
        removeIfSame(takeover, other.ino);
        continue;
      }
      if (Date.now() + wait > deadline)
        throw new Error(
          `${dir}: its stale lock ${file} is being taken over by process ${other.pid} for more than ` +
            `${waitMs / 1000} s; try again (if no normprune run or sweep writes there, delete ${takeover})`,
        );
      sleepMs(wait);
    }
  } finally {
    rmSync(mine, { force: true });
  }
}

/** Throws a clear error unless `dir` exists (or can be created) and is writable. */
export function ensureWritableDir(dir: string, what = 'run'): void {
  let isFile = false;
  try {
    isFile = statSync(dir, { throwIfNoEntry: false })?.isDirectory() === false;
  } catch {
    /* a file on the way (ENOTDIR) or no access: makeDirs below says which */
  }
  if (isFile)
    throw new Error(
      `--out ${dir} is a file, not a folder; give a folder for the ${what} (a new one, or one it wrote)`,
    );
  try {
    makeDirs(dir);
    accessSync(dir, constants.W_OK);
    // A probe left by a process killed right here is recognised (and removed) by `ourLeftovers`.
    const probe = join(dir, `.write-probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    // The folder in the way (a file on the path, a read-only parent), rather than Node's ENOTDIR.
    const why = unwritableFolder(dir) ?? (e as Error).message;
    throw new Error(`output directory ${dir} is not writable: ${why}; choose another --out`);
  }
}

/**
 * Why folder `dir` cannot be written, if it cannot: the folder itself, or its nearest existing
 * parent where it is to be created, is checked, and nothing is created.
 */
export function unwritableFolder(dir: string): string | undefined {
  const { existing } = missingFolders(dir);
  // A file on the way (`afile/sub`): no folder can be created below it.
  if (existing !== resolve(dir) && !statSync(existing).isDirectory())
    return `${existing} is a file, not a folder, so nothing can be created below it`;
  try {
    accessSync(existing, constants.W_OK);
    return undefined;
  } catch (e) {
    return `${existing} is not writable (${(e as NodeJS.ErrnoException).code})`;
  }
}

/**
 * Reads back what a run wrote: JSON has no NaN, so an error rate that could not be
 * measured (no validation split) was written as null; it reads back as NaN ("n/a"),
 * not as 0 once multiplied into a percentage.
 */
export function unmeasuredAsNaN(key: string, value: unknown): unknown {
  return value === null && /Error(Pct)?$/.test(key) ? NaN : value;
}

/**
 * Reads and parses a JSON file; a file that cannot be read or parsed throws, naming it as
 * `shown` (default: its path), not with a bare parser message.
 */
export function parseJsonFile<T = any>(
  file: string,
  reviver?: (key: string, value: unknown) => unknown,
  shown = file,
): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${shown} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text, reviver) as T;
  } catch (e) {
    throw new Error(`${shown} is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Reads a JSON file; a missing, truncated or malformed file throws an error
 * naming the file and `fix` (what to do about it), not a bare parser message.
 */
export function readJsonFile<T = any>(
  file: string,
  fix: string,
  reviver?: (key: string, value: unknown) => unknown,
): T {
  try {
    return parseJsonFile<T>(file, reviver);
  } catch (e) {
    throw new Error(`${(e as Error).message}; ${fix}`);
  }
}

/** What a JSON value is, for a message: `null`, `an array`, `a string`, ... */
function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * A JSON shape to check a file against: a type, an object's required fields, an array's
 * elements, or a check of its own that returns what it wanted when the value is not that
 * (`'a non-negative integer'`), and undefined when it is.
 */
export type Shape =
  | 'string'
  | 'number'
  | 'boolean'
  | { [field: string]: Shape }
  | [Shape]
  | ((v: unknown) => string | undefined);

/**
 * Why `v` (read from a JSON file) does not have the shape `shape`, naming the first field
 * that does not (`"a.b[2]" is a string, not a number`; a check of its own shows the value,
 * `"epoch" is "x", not a non-negative integer`), or undefined when it does. Fields the
 * shape does not list are not checked.
 */
export function shapeProblem(v: unknown, shape: Shape, at = ''): string | undefined {
  const name = at === '' ? 'it' : `"${at}"`;
  if (v === undefined) return `${name} is missing`;
  if (typeof shape === 'function') {
    const want = shape(v);
    return want === undefined ? undefined : `${name} is ${JSON.stringify(v)}, not ${want}`;
  }
  const want =
    typeof shape === 'string'
      ? `a ${shape}`
      : Array.isArray(shape)
        ? 'an array'
        : at === ''
          ? 'a JSON object'
          : 'an object';
  const ok =
    typeof shape === 'string'
      ? typeof v === shape
      : Array.isArray(shape)
        ? Array.isArray(v)
        : v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!ok) return `${name} is ${jsonKind(v)}, not ${want}`;
  if (typeof shape === 'string') return undefined;
  if (Array.isArray(shape)) {
    for (const [i, x] of (v as unknown[]).entries()) {
      const why = shapeProblem(x, shape[0], `${at}[${i}]`);
      if (why) return why;
    }
    return undefined;
  }
  for (const [k, sub] of Object.entries(shape)) {
    const why = shapeProblem((v as Record<string, unknown>)[k], sub, at === '' ? k : `${at}.${k}`);
    if (why) return why;
  }
  return undefined;
}

/**
 * Of a folder's entries, the temporary files of normprune processes that have
 * ended (a write probe, an atomic write's temp file): leftovers of a kill, not
 * files of the user's.
 */
export function ourLeftovers(entries: readonly string[]): string[] {
  return entries.filter((e) => {
    const m =
      /^\.write-probe-(\d+)$/.exec(e) ??
      /^\.(\d+)\.\d+\.tmp$/.exec(e) ??
      /^\.normprune\.lock(?:\.takeover)?\.(\d+)\.(?:\d+\.tmp|stale)$/.exec(e);
    return m !== null && processGone(Number(m[1]));
  });
}

/**
 * Of `entries` of `out` (files of the user's: `out` holds no run or sweep), those a run's or a
 * sweep's files would overwrite, by one rule for both: `owns(entry)` says whether the output writes
 * an entry of that name (`true`), only some files inside a folder of that name (a predicate on
 * their names; then `folder/file` is listed), or nothing there (`false`). A file, or a folder
 * holding anything, named as the output's is overwritten; an empty folder holds nothing to lose.
 */
export function overwrittenEntries(
  out: string,
  entries: readonly string[],
  owns: (entry: string) => boolean | ((file: string) => boolean),
): string[] {
  const hit: string[] = [];
  for (const e of entries) {
    const own = owns(e);
    if (own === false) continue;
    const path = join(out, e);
    if (!lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) hit.push(e);
    else if (own === true) {
      if (readdirSync(path).length) hit.push(e);
    } else for (const f of readdirSync(path)) if (own(f) && !f.startsWith('.')) hit.push(`${e}/${f}`);
  }
  return hit;
}

/**
 * `dir`, absolute, with links resolved in the part of it that exists: a new --out below a link
 * into a run's model/, or into the --model folder, is in that folder; `r1`, `./r1/` and a link
 * to it are one folder.
 */
export function realPathBelow(dir: string): string {
  let there = resolve(dir);
  const rest: string[] = [];
  for (; !existsSync(there) && dirname(there) !== there; there = dirname(there))
    rest.unshift(basename(there));
  return join(existsSync(there) ? realpathSync(there) : there, ...rest);
}
