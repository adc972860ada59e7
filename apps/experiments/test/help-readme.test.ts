// What each command's --help names, the README names too: every flag (a user who reads one of
// them must not meet a flag the other hides), and the default of --budget (the config's
// defaultBudget), which neither said.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli } from './helpers';

const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
const flags = (text: string): Set<string> => new Set(text.match(/--[a-z][a-z0-9-]+/g) ?? []);

test.each(['reproduce', 'train', 'sweep', 'prune', 'eval', 'report', 'list'])(
  'every flag of `%s --help` is in the README',
  async (command) => {
    const help = await cli([command, '--help']);
    expect(help.code).toBe(0);
    const named = flags(readme);
    expect([...flags(help.out)].filter((f) => !named.has(f))).toEqual([]);
  },
);

test("--budget's default is said alike in --help and the README", async () => {
  for (const command of ['reproduce', 'train', 'sweep']) {
    const help = (await cli([command, '--help'])).out.replace(/\s+/g, ' ');
    expect(help).toContain(
      "(default: the config's defaultBudget, full unless it names another, as vgg-16's reduced)",
    );
  }
  expect(readme.replace(/\s+/g, ' ')).toContain(
    "`--budget` (default: the config's `defaultBudget`, `full` unless it names another, as vgg-16's `reduced`)",
  );
});

test.each(['main', 'reproduce', 'train', 'sweep', 'prune', 'eval', 'report', 'list'])(
  '`%s --help` fits 100 columns',
  async (command) => {
    const help = await cli(command === 'main' ? ['--help'] : [command, '--help']);
    expect(help.out.split('\n').filter((l) => l.length > 100)).toEqual([]);
  },
);
