// One formatting per kind of figure, shared by the reports, the CLI's lines and
// the docs' results table (which imports the built module).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { budgetText, ciText, int, ms, pct, pp, seconds } from '../src/index';
import { jpegCifarNote } from '../src/data';
import { pValueText } from '../src/format';
import { markdownText } from '../src/escape';
import { pairedTest } from '../src/paired';

test('percentages and percentage points carry two decimals and a sign where it is a change', () => {
  expect(pct(85.8934)).toBe('85.89%');
  expect(pct(1.5, 1)).toBe('1.5%');
  expect(pp(0.2345)).toBe('+0.23 pp');
  expect(pp(0)).toBe('+0.00 pp');
  expect(pp(-0.1)).toBe('-0.10 pp');
});

test('a missing or non-finite figure reads n/a, never NaN or undefined', () => {
  for (const f of [pct, pp, int, ms, seconds]) {
    expect(f(undefined)).toBe('n/a');
    expect(f(NaN)).toBe('n/a');
    expect(f(Infinity)).toBe('n/a');
  }
});

test('an exact p-value prints two significant digits while a double holds them, and < 1e-300 below', () => {
  const p = (b: number, c: number) =>
    pValueText(pairedTest({ n: 10000, bothWrong: 0, onlyFirstWrong: b, onlySecondWrong: c }).pValue);
  // Exact values (2 (1 + m) / 2^m with m = b + c), computed in integers: 1.894e-295 and 2.986e-300.
  expect(p(1, 989)).toBe('1.9e-295');
  expect(p(0, 996)).toBe('3.0e-300');
  // 8.4e-323 exactly, but a subnormal double keeps about one digit there: it read 7.9e-323.
  expect(p(1, 1080)).toBe('< 1e-300');
  expect(pValueText(0)).toBe('< 1e-300');
  expect(pValueText(0.734)).toBe('0.73');
  expect(pValueText(NaN)).toBe('n/a');
});

test('counts get thousands separators, latencies two decimals below 10 ms, durations one below 10 s', () => {
  expect(int(266610)).toBe('266,610');
  expect(int(12.6)).toBe('13');
  expect(ms(0.456)).toBe('0.46 ms');
  expect(ms(14.24)).toBe('14.2 ms');
  expect(seconds(443.4)).toBe('443 s');
  // Short phases keep a decimal, and one that ran is never shown as 0 s.
  expect([9.96, 9.94, 3.24, 0.05, 0.049, 0, undefined].map(seconds)).toEqual([
    '10 s',
    '9.9 s',
    '3.2 s',
    '0.1 s',
    '< 0.1 s',
    '0 s',
    'n/a',
  ]);
});

test('an interval shows both signs and the unit once; -0.0454 is not rounded to -0.04', () => {
  expect(ciText([-0.0454, 0.51])).toBe('[-0.05, +0.51 pp]');
  expect(ciText([0.03, 0.41])).toBe('[+0.03, +0.41 pp]');
  // No disagreement, no interval: not a zero-width one.
  expect(ciText([0, 0])).toBe('n/a (the models never disagree)');
});

test('the budget cell marks a named reduced budget', () => {
  expect(budgetText({ budget: 'full', reduced: false })).toBe('full');
  expect(budgetText({ budget: 'reduced', reduced: true })).toBe('reduced');
  expect(budgetText({ budget: 'quick', reduced: true })).toBe('quick (reduced)');
  expect(budgetText({})).toBe('n/a');
});

test('the built module the docs script imports exports the same functions', () => {
  const built = join(__dirname, '..', 'dist', 'esm', 'format.js');
  // Nx builds the project before its tests (nx.json: test dependsOn build).
  if (!existsSync(built)) throw new Error(`${built} is missing: run npx nx run experiments:build first`);
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const f = await import(${JSON.stringify('file://' + built)}); console.log(f.ciText([-0.0454, 0.51]), f.budgetText({ budget: 'quick', reduced: true }))`,
    ],
    { encoding: 'utf8' },
  );
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('[-0.05, +0.51 pp] quick (reduced)');
});

test("a CIFAR-10 run's data note names the JPEG copy, archive or folder, and nothing else", () => {
  const note = 'CIFAR-10 from the JPEG copy (cifar-10-images.tar.gz): pixels are JPEG-decoded';
  for (const source of [
    '/work/shared/data/cifar-10-images.tar.gz',
    '/data/cifar-10-images',
    '/d/my-images.tar',
  ])
    expect(jpegCifarNote('cifar10', source)).toMatch(note);
  for (const source of ['/d/cifar-10-batches-bin', '/d/cifar-10-binary.tar.gz'])
    expect(jpegCifarNote('cifar10', source)).toBeUndefined();
  expect(jpegCifarNote('mnist', '/d/cifar-10-images')).toBeUndefined();
});

test('free text in Markdown escapes emphasis by underscores and strikethrough by tildes, not an underscore inside a name', () => {
  // GitHub renders _u_ as emphasis and ~~s~~ as struck through; the HTML report shows them as written.
  expect(markdownText('_u_ and ~~s~~ or ~t~')).toBe('\\_u\\_ and \\~\\~s\\~\\~ or \\~t\\~');
  expect(markdownText('dense_1 and block5_conv3')).toBe('dense_1 and block5_conv3');
  expect(markdownText('__init__')).toBe('\\_\\_init\\_\\_');
});
