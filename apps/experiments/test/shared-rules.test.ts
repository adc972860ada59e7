// The rules the CLI's commands share (review 25, finding 8): what a config.json is, how a message
// lists names, what a run's or a sweep's files would overwrite.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRunConfigFile } from '../src/pipeline';
import { firstNames } from '../src/format';
import { overwrittenEntries } from '../src/fsutil';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-rules-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('readRunConfigFile: a run’s, another JSON file, one that does not parse, none', () => {
  const file = (name: string, text: string) => {
    writeFileSync(join(tmp, name), text);
    return join(tmp, name);
  };
  const run = { experiment: 'x', seed: 1, budget: { name: 'tiny', spec: {} }, config: { name: 'x' } };
  expect(readRunConfigFile(file('run.json', JSON.stringify(run)))).toEqual({ kind: 'run', run });
  expect(readRunConfigFile(file('tool.json', '{"extends": "lenet-5"}')).kind).toBe('foreign');
  expect(readRunConfigFile(file('cut.json', '{"config": ')).kind).toBe('damaged');
  expect(readRunConfigFile(join(tmp, 'none.json')).kind).toBe('missing');
  expect(readRunConfigFile(join(tmp, 'run.json', 'config.json')).kind).toBe('missing');
});

test('firstNames lists the first three in order', () => {
  expect(firstNames(['c', 'a'])).toBe('a, c');
  expect(firstNames(['d', 'c', 'b', 'a'])).toBe('a, b, c, ...');
});

test('overwrittenEntries: files and non-empty folders named as the output’s, the owned files inside folders', () => {
  const out = join(tmp, 'out');
  mkdirSync(join(out, 'plots'), { recursive: true });
  mkdirSync(join(out, 'empty'));
  mkdirSync(join(out, 'full'));
  writeFileSync(join(out, 'full', 'x'), '');
  writeFileSync(join(out, 'plots', 'pareto.svg'), '');
  writeFileSync(join(out, 'plots', 'mine.svg'), '');
  writeFileSync(join(out, 'report.md'), '');
  writeFileSync(join(out, 'notes.txt'), '');
  const owns = (e: string) =>
    e === 'plots' ? (f: string) => f.endsWith('.svg') && f !== 'mine.svg' : e !== 'notes.txt';
  expect(overwrittenEntries(out, ['plots', 'empty', 'full', 'report.md', 'notes.txt'], owns)).toEqual([
    'plots/pareto.svg',
    'full',
    'report.md',
  ]);
});
