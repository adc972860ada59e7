// `sweep --resume` into a folder that holds no sweep (a new folder, an empty one, a mistyped
// --out) is refused as a run's --resume is, rather than starting the whole sweep there.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny, tinyWasm } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-resume-nothing-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sweep = (out: string, ...extra: string[]) =>
  cli(['sweep', 'lenet-500-300', '--lambda', '0.001,0.002', ...tinyWasm(out), ...extra]);

test('a new folder: refused, nothing made', async () => {
  const out = join(tmp, 'new', 'sweep');
  const r = await sweep(out, '--resume');
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `--resume: no sweep in ${out}; nothing to resume: run the command without --resume (${out} does not exist)`,
  );
  expect(existsSync(join(tmp, 'new'))).toBe(false);
});

test('an empty folder: refused, left empty', async () => {
  const out = join(tmp, 'empty');
  mkdirSync(out);
  const r = await sweep(out, '--resume');
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `--resume: no sweep in ${out}; nothing to resume: run the command without --resume\n`,
  );
  expect(readdirSync(out)).toEqual([]);
});

test('a file: said to be a file, as without --resume (it failed with ENOTDIR)', async () => {
  const out = join(tmp, 'a-file');
  writeFileSync(out, 'mine\n');
  const r = await sweep(out, '--resume');
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `--out ${out} is a file, not a folder; give a folder for the sweep (a new one, or one it wrote)`,
  );
  expect(readFileSync(out, 'utf8')).toBe('mine\n');
});

test('a folder holding a run: named as a run, not a sweep', async () => {
  const out = join(tmp, 'run');
  expect((await reproduceTiny(out)).code).toBe(0);
  const r = await sweep(out, '--resume');
  expect(r.code).toBe(1);
  expect(r.err).toContain(`${out} holds a run, not a sweep; choose another --out`);
});

test('a sweep stopped in its first point continues with --resume', async () => {
  const out = join(tmp, 'stopped');
  expect((await sweep(out, '--stop-after-steps', '1')).code).toBe(130);
  const r = await sweep(out, '--resume');
  expect(r.code).toBe(0);
  expect(existsSync(join(out, 'sweep.json'))).toBe(true);
});
