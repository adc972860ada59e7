// The one reader of sweep.json (src/sweep-file.ts), and what each of its callers does with a
// sweep.json that is cut short or is not what a sweep writes.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSweepFile, SweepFileError, writeSweepFile } from '../src/sweep-file';
import { sweepIn } from '../src/pipeline';
import { cli, experimentCopy } from './helpers';

const committed = join(
  __dirname,
  '..',
  'results',
  'sweeps',
  'lenet-500-300-input',
  'seed-3',
  'sweep-lenet-500-300-input',
);
const text = readFileSync(join(committed, 'sweep.json'), 'utf8');
const good = JSON.parse(text);
let tmp: string;
let n = 0;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-file-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder holding `content` as its sweep.json. */
function sweepDir(content: string): string {
  const dir = join(tmp, `sweep-${n++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'sweep.json'), content);
  return dir;
}

/** The error readSweepFile throws for `dir`. */
function errorOf(dir: string): SweepFileError {
  try {
    readSweepFile(dir);
  } catch (e) {
    return e as SweepFileError;
  }
  throw new Error('no error');
}

const truncated = text.slice(0, Math.floor(text.length / 2));
const edited = (edit: (s: any) => unknown) => JSON.stringify(edit(JSON.parse(text)));
// The committed sweep is an exported one, whose points lie beside it ('../x'); a sweep's own are inside ('x').
const local = edited((s) => ({
  ...s,
  points: s.points.map((p: any) => ({ ...p, dir: p.dir.replace(/^\.\.\//, '') })),
}));
const localDirs: string[] = JSON.parse(local).points.map((p: { dir: string }) => p.dir);
const WRONG_SHAPES: [string, string, string][] = [
  ['null', 'null', 'it is null, not a JSON object'],
  ['an array', '[]', 'it is an array, not a JSON object'],
  ['points that is not an array', edited((s) => ({ ...s, points: 3 })), '"points" is a number, not an array'],
  [
    'a point without dir',
    edited((s) => ({ ...s, points: [{ ...s.points[0], dir: undefined }] })),
    '"points[0].dir" is missing',
  ],
  [
    'a lambda that is a string',
    edited((s) => ({ ...s, points: [s.points[0], { ...s.points[1], lambda: '0.1' }] })),
    '"points[1].lambda" is a string, not a number',
  ],
  ['no note', edited((s) => ({ ...s, note: undefined })), '"note" is missing'],
  ['a command that is a number', edited((s) => ({ ...s, command: 5 })), '"command" is 5, not a string'],
  [
    'a bisection that is a string',
    edited((s) => ({ ...s, bisection: 'x' })),
    '"bisection" is "x", not an object',
  ],
];

describe('readSweepFile', () => {
  it('reads what a sweep writes, typed, and nothing where there is no sweep.json', () => {
    const sweep = readSweepFile(committed)!;
    expect(sweep).toEqual(good);
    expect(sweep.points.map((p) => p.label)).toEqual(good.points.map((p: { label: string }) => p.label));
    expect(readSweepFile(tmp)).toBeUndefined();
  });

  it('reads an error rate written as null (not measured) as NaN, and writes it back as null', () => {
    const dir = sweepDir(edited((s) => ({ ...s, points: [{ ...s.points[0], validationErrorPct: null }] })));
    const sweep = readSweepFile(dir)!;
    expect(sweep.points[0].validationErrorPct).toBeNaN();
    const copy = join(tmp, `copy-${n++}`);
    mkdirSync(copy);
    writeSweepFile(copy, sweep);
    expect(JSON.parse(readFileSync(join(copy, 'sweep.json'), 'utf8'))).toEqual(
      JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8')),
    );
  });

  it('a truncated sweep.json: one error naming the file', () => {
    const dir = sweepDir(truncated);
    const e = errorOf(dir);
    expect(e).toBeInstanceOf(SweepFileError);
    expect(e.file).toBe(join(dir, 'sweep.json'));
    expect(e.message).toMatch(
      new RegExp(
        `^${join(dir, 'sweep.json').replace(/[.\\/]/g, '\\$&')} is not the sweep\\.json of a normprune sweep: ` +
          'it is not valid JSON \\(.+\\)$',
      ),
    );
  });

  it.each(WRONG_SHAPES)('%s: one error naming the file and what is wrong', (_, content, why) => {
    const dir = sweepDir(content);
    expect(errorOf(dir).message).toBe(
      `${join(dir, 'sweep.json')} is not the sweep.json of a normprune sweep: ${why}`,
    );
  });

  it('a sweep.json that cannot be read: the error names the file and the reason', () => {
    const dir = sweepDir(text);
    // Node's fs module itself (fsutil calls its functions through it), for the spy.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fs = require('node:fs') as typeof import('node:fs');
    const real = fs.readFileSync as (...args: unknown[]) => unknown;
    const spy = jest.spyOn(fs, 'readFileSync').mockImplementation(((...args: unknown[]) => {
      if (args[0] === join(dir, 'sweep.json')) throw Object.assign(new Error('denied'), { code: 'EACCES' });
      return real(...args);
    }) as typeof fs.readFileSync);
    try {
      expect(errorOf(dir).message).toBe(
        `${join(dir, 'sweep.json')} is not the sweep.json of a normprune sweep: cannot read it (EACCES)`,
      );
    } finally {
      spy.mockRestore();
    }
  });
});

describe("each caller's answer to a damaged sweep.json", () => {
  it.each([
    ['truncated', truncated, /it is not valid JSON \(.+\)/.source],
    ...WRONG_SHAPES.slice(2, 5).map(([what, content, why]) => [
      what,
      content,
      why.replace(/[.()[\]]/g, '\\$&'),
    ]),
  ])('report (%s): refused, naming the file, what is wrong and the fix', async (_, content, why) => {
    const dir = sweepDir(content);
    const r = await cli(['report', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        `^normprune: error: report: ${join(dir, 'sweep.json').replace(/[.\\/]/g, '\\$&')} is not the sweep\\.json ` +
          `of a normprune sweep: ${why}; run the sweep again \\(with --resume it reuses its finished points\\) or ` +
          'remove the file\\n$',
      ),
    );
  });

  it("a run's --force removes the sweep its --out held only when sweep.json is what a sweep writes", () => {
    const dir = sweepDir(local);
    // A run's config.json (one that does not read as a run's would be a file of the user's).
    const run = { experiment: 'lenet-500-300', seed: 1, budget: { name: 'tiny', spec: {} } };
    for (const d of localDirs.slice(0, 2)) {
      mkdirSync(join(dir, d));
      writeFileSync(
        join(dir, d, 'config.json'),
        JSON.stringify({ ...run, config: experimentCopy('lenet-500-300') }),
      );
      writeFileSync(join(dir, d, 'results.json'), '{}');
    }
    // The points that hold a run: the others were never run, or were removed.
    expect(sweepIn(dir)).toEqual([
      join(dir, 'sweep.json'),
      ...localDirs.slice(0, 2).map((d) => join(dir, d)),
    ]);
    for (const content of [truncated, ...WRONG_SHAPES.map((w) => w[1])]) {
      writeFileSync(join(dir, 'sweep.json'), content);
      expect(sweepIn(dir)).toEqual([]);
    }
    rmSync(join(dir, 'sweep.json'));
    expect(sweepIn(dir)).toEqual([]);
  });

  it('report --export writes the exported sweep.json through the same writer: the points renamed, all else kept', async () => {
    const src = join(tmp, `exported-src-${n++}`);
    cpSync(committed, src, { recursive: true });
    // The points of the committed sweep lie beside it; a sweep's own lie inside it.
    for (const [k, p] of good.points.entries())
      cpSync(join(committed, p.dir), join(src, localDirs[k]), { recursive: true });
    writeFileSync(join(src, 'sweep.json'), local);
    const dest = join(tmp, `exported-${n++}`);
    const r = await cli(['report', src, '--export', dest]);
    expect(r.code).toBe(0);
    const exported = JSON.parse(readFileSync(join(dest, `sweep-${good.experiment}`, 'sweep.json'), 'utf8'));
    expect(exported).toEqual(good);
  });
});
