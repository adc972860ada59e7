// A finished bisection asked again with fewer --bisect-steps is refused (its later points would be
// left out), and the refusal says that it is this bisection and which --bisect-steps goes on,
// rather than only that the folder "holds another sweep".
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, tinyWasm } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-bisect-fewer-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bisect = (out: string, steps: string, ...extra: string[]) =>
  cli([
    'sweep',
    'lenet-500-300',
    '--target-compression',
    '10',
    '--bisect-steps',
    steps,
    ...tinyWasm(out),
    ...extra,
  ]);

test('fewer steps than the bisection there ran: named, with the --bisect-steps that goes on', async () => {
  const out = join(tmp, 'sweep');
  expect((await bisect(out, '1')).code).toBe(0);
  for (const extra of [[], ['--resume']]) {
    const r = await bisect(out, '0', ...extra);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      '; it is this bisection, run with --bisect-steps 1: 0 steps would leave its later points out; ' +
        'give --bisect-steps 1 or more (with --resume, its points are reused); choose another --out',
    );
  }
  // Another target is another sweep: no such hint.
  const other = await cli(['sweep', 'lenet-500-300', '--target-compression', '20', ...tinyWasm(out)]);
  expect(other.code).toBe(1);
  expect(other.err).toMatch(/holds another sweep/);
  expect(other.err).not.toMatch(/it is this bisection/);
});
