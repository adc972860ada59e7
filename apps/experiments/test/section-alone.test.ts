// `report --section NAME` names the README markers of --write-readme: without it, the flag used
// to be accepted and ignored (the reports were rewritten, no README touched), while --seeds-only
// alone is refused.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

test('report --section without --write-readme is a usage error', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'section-alone-'));
  for (const extra of [[], ['--table']]) {
    const r = await cli(['report', join(tmp, 'run'), '--section', 'sweep', ...extra]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/report: --section goes with --write-readme FILE/);
  }
});
