// A bisection's answer line and note write each compression beside the target with the decimals
// that tell it from the target: a point at 99.8992% missed a target of 99.9%, and must not read
// "missed it (99.90%)".
import { pctBeside } from '../src/format';
import { bisectionNote } from '../src/sweep';
import type { SweepPoint } from '../src/report';

const point = (lambda: number, compressionPct: number): SweepPoint =>
  ({
    label: `lambda-${lambda}`,
    dir: `lambda-${lambda}`,
    lambda,
    compressionPct,
    validationErrorPct: 1,
    testErrorPct: 1,
    baselineValidationErrorPct: 1,
    baselineTestErrorPct: 1,
  }) as SweepPoint;

test('pctBeside adds decimals only while two would show the bound', () => {
  expect(pctBeside(99.89923233359595, 99.9)).toBe('99.899%');
  expect(pctBeside(99.94302046499698, 99.9)).toBe('99.94%');
  expect(pctBeside(85.39999, 85.4)).toBe('85.4000%');
  expect(pctBeside(85.4, 85.4)).toBe('85.40%');
  expect(pctBeside(50.123, 85.4)).toBe('50.12%');
  expect(pctBeside(NaN, 85.4)).toBe('n/a');
});

test("a bisection's note does not show a miss as reaching the target", () => {
  const note = bisectionNote([point(1.682, 99.89923233359595), point(1.834, 99.94302046499698)], 99.9);
  expect(note).toBe(
    'Bisection for >= 99.9% of parameters removed: smallest lambda reaching it is 1.834 (99.94% removed); ' +
      'the largest lambda below it, 1.682, missed it (99.899% removed).',
  );
});
