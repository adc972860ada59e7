import { spawnSync } from 'node:child_process';
import { processGone } from '../src/process.js';

afterEach(() => {
  jest.restoreAllMocks();
});

/** An error like the one `process.kill` throws, with Node's errno `code`. */
function killError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`kill ${code}`), { code, errno: -1, syscall: 'kill' });
}

describe('processGone on real processes', () => {
  it('this process and its parent are alive', () => {
    expect(processGone(process.pid)).toBe(false);
    expect(processGone(process.ppid)).toBe(false);
  });

  it('never asks the operating system about this process', () => {
    const kill = jest.spyOn(process, 'kill');
    expect(processGone(process.pid)).toBe(false);
    expect(kill).not.toHaveBeenCalled();
  });

  it('pid 1 is alive, whoever owns it (EPERM when this process is not root)', () => {
    expect(processGone(1)).toBe(false);
  });

  it('a child that has exited and been reaped is gone', () => {
    const child = spawnSync(process.execPath, ['-e', '']);
    expect(child.status).toBe(0);
    expect(child.pid).toBeGreaterThan(0);
    expect(processGone(child.pid)).toBe(true);
  });

  it('a pid above the largest Linux allows is gone', () => {
    // PID_MAX_LIMIT is 4,194,304 on 64-bit Linux.
    expect(processGone(4999999)).toBe(true);
  });
});

describe('processGone reads the error process.kill(pid, 0) throws', () => {
  it('EPERM (a live process of another user) counts as alive', () => {
    const kill = jest.spyOn(process, 'kill').mockImplementation(() => {
      throw killError('EPERM');
    });
    expect(processGone(4242)).toBe(false);
    expect(kill).toHaveBeenCalledTimes(1);
    expect(kill).toHaveBeenCalledWith(4242, 0);
  });

  it('ESRCH (no such process) counts as gone', () => {
    const kill = jest.spyOn(process, 'kill').mockImplementation(() => {
      throw killError('ESRCH');
    });
    expect(processGone(4242)).toBe(true);
    expect(kill).toHaveBeenCalledWith(4242, 0);
  });

  it('any other error counts as alive: nothing is deleted on a doubt', () => {
    for (const code of ['EINVAL', 'EACCES', undefined]) {
      jest.spyOn(process, 'kill').mockImplementationOnce(() => {
        throw code === undefined ? new Error('no code') : killError(code);
      });
      expect([code, processGone(4242)]).toEqual([code, false]);
    }
  });

  it('a signal 0 that succeeds means alive', () => {
    const kill = jest.spyOn(process, 'kill').mockImplementation(() => true);
    expect(processGone(4242)).toBe(false);
    expect(kill).toHaveBeenCalledWith(4242, 0);
  });
});
