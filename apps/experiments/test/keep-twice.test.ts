// `prune --keep` / `--keep-filters` naming one layer twice: the last count used to win without a
// word, while a flag given twice is refused.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

test.each([
  [
    '--keep',
    'dense1=3,dense1=4',
    /--keep: layer dense1 is given twice \("dense1=3" and "dense1=4"\); give it once/,
  ],
  [
    '--keep-filters',
    'conv2=5, conv2=10',
    /--keep-filters: layer conv2 is given twice \("conv2=5" and "conv2=10"\)/,
  ],
])('prune %s %s is refused before anything is loaded or written', async (flag, value, message) => {
  const tmp = mkdtempSync(join(tmpdir(), 'keep-twice-'));
  const never = join(tmp, 'never');
  const r = await cli(['prune', '--model', join(tmp, 'no-model'), '--out', never, flag, value]);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(message);
  expect(existsSync(never)).toBe(false);
});
