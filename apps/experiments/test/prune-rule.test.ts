// A config's prune rule (prune.keep, keepFilters, threshold) cuts groups after proximal
// training: results.json and the report tell its cut from what proximal training left.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResults } from '../src/index';
import { runReportBlocks, toHtml, toMarkdown } from '../src/report';
import { cli, writeVariant } from './helpers';

let tmp: string;
beforeEach(() => (tmp = mkdtempSync(join(tmpdir(), 'np-prune-rule-'))));
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

// The committed lenet-5 run (conv1, conv2 and dense1 decomposed), as if its config had
// cut dense1 to 50 groups by prune.keep after proximal training left 500 live.
const committed = JSON.parse(
  readFileSync(join(__dirname, '..', 'results', 'lenet-5', 'results.json'), 'utf8'),
) as RunResults;
const withKeep = (): RunResults => ({
  ...committed,
  pruneRule: { threshold: 0, keep: { dense1: 50 } },
  groups: committed.groups.map((g) =>
    g.layer === 'dense1' ? { ...g, liveAfterProximal: 500, live: 50 } : { ...g, liveAfterProximal: g.live },
  ),
});

test("a report names the prune rule and gives both counts, not the rule's cut as proximal training's", () => {
  const blocks = runReportBlocks(tmp, withKeep(), []);
  const md = toMarkdown(blocks);
  expect(md).toMatch(/\*\*Prune rule:\*\* .*`prune\.keep` `\{"dense1":50\}`/);
  expect(md).toContain('dense1: 500 of 500 groups live after proximal training, 50 left by the rule');
  expect(md).toMatch(/parameters removed include what the config's prune rule \(`prune\.keep`\) cut/);
  const head = md.split('\n').find((l) => l.startsWith('| layer'))!;
  expect(head).toMatch(/live groups after proximal training +\| groups left by the prune rule/);
  const dense1 = md.split('\n').find((l) => l.startsWith('| dense1'))!;
  expect(dense1).toMatch(/\| 500\/500 \(output\) +\| 50\/500 +\|/);
  // report.html is rendered from the same blocks.
  expect(toHtml('lenet-5 report', blocks, tmp)).toContain('50 left by the rule');
  // The plot draws the two counts apart, and its caption says which is which.
  const svg = readFileSync(join(tmp, 'plots', 'groups.svg'), 'utf8');
  expect(svg).toContain('live after proximal');
  expect(svg).toContain('left by prune rule');
  expect(md).toMatch(
    /!\[groups per decomposed layer: live \(magnitude > 0\) after proximal training, and left by the config's prune rule \(prune\.keep\)/,
  );
});

test('a run without a prune rule (every committed run) renders as before', () => {
  const md = toMarkdown(runReportBlocks(tmp, committed, []));
  expect(md).not.toMatch(/prune rule/i);
  expect(md).toMatch(/\| layer +\| units before +\| units after +\| live groups +\|/);
});

test('a run with prune.keep records the groups live after proximal training and the rule in results.json', async () => {
  const file = writeVariant(tmp, 'keep', (cfg) => {
    cfg.name = 'keep';
    cfg.prune = { keep: { dense1: 50 } };
  });
  const out = join(tmp, 'run');
  const r = await cli(['train', '--config', file, '--budget', 'tiny', '--backend', 'wasm', '--out', out]);
  expect(r.code).toBe(0);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as RunResults;
  expect(res.pruneRule).toEqual({ threshold: 0, keep: { dense1: 50 } });
  const dense1 = res.groups.find((g) => g.layer === 'dense1')!;
  expect(dense1.live).toBe(50);
  // One tiny epoch of proximal training leaves far more than 50 of dense1's 500 groups live.
  expect(dense1.liveAfterProximal).toBeGreaterThan(50);
  for (const g of res.groups) expect(g.liveAfterProximal).toBeGreaterThanOrEqual(g.live);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  expect(md).toContain(
    `dense1: ${dense1.liveAfterProximal} of ${dense1.groups} groups live after proximal training, 50 left by the rule`,
  );
}, 120_000);
