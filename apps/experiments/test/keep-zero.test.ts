// A config's prune.keep / prune.keepFilters of 0 removes a whole layer of the sequential model:
// the run trained the baseline and the proximal phase, then surgery refused the model, blaming
// the L1 penalty. The config check refuses it before anything runs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, writeVariant } from './helpers';

test.each([
  ['keep', 'lenet-500-300', { keep: { dense1: 0 } }, /prune\.keep\.dense1: 0 would remove the whole layer/],
  [
    'keepFilters',
    'lenet-5',
    { keepFilters: { conv2: 0 } },
    /prune\.keepFilters\.conv2: 0 would remove the whole layer/,
  ],
])('prune.%s of 0 is a config error (exit 2)', async (_field, base, prune, message) => {
  const tmp = mkdtempSync(join(tmpdir(), 'keep-zero-'));
  const file = writeVariant(tmp, 'zero', (cfg) => (cfg.prune = prune), base);
  const r = await cli(['train', '--config', file, '--print-config']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(message);
  // 1 is fine.
  const one = writeVariant(
    tmp,
    'one',
    (cfg) => (cfg.prune = JSON.parse(JSON.stringify(prune).replace(':0', ':1'))),
    base,
  );
  expect((await cli(['train', '--config', one, '--print-config'])).code).toBe(0);
});
