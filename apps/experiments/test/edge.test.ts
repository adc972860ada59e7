// The reports of unusual runs: free text with markup in it, and metrics with gaps.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResults } from '../src/index';
import { writeReport, type MetricLine } from '../src/report';
import { elements, parseHtmlPage, parseXml, type XmlElement } from './xml';

const committed = JSON.parse(
  readFileSync(join(__dirname, '..', 'results', 'lenet-500-300-output', 'results.json'), 'utf8'),
) as RunResults;
const metricsOf = (lines: Partial<MetricLine>[]) => lines as MetricLine[];

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'np-edge-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The elements a report page may hold: the page's own, the charts', and the inline Markdown's. */
const PAGE =
  'html head meta title style body h1 h2 h3 p strong code pre table thead tbody tr th td figure figcaption img';
const CHART = 'svg rect text line path circle g';
const allowed = new Set(`${PAGE} ${CHART}`.split(' '));

/** Parses a written report's HTML and SVGs strictly, and returns the page. */
function readReport(d: string): { md: string; page: XmlElement } {
  for (const f of readdirSync(join(d, 'plots'))) parseXml(readFileSync(join(d, 'plots', f), 'utf8'));
  const page = parseHtmlPage(readFileSync(join(d, 'report.html'), 'utf8'));
  for (const el of elements(page)) expect(allowed).toContain(el.name);
  return { md: readFileSync(join(d, 'report.md'), 'utf8'), page };
}

describe('a run report of unusual metrics', () => {
  const epoch = (
    phase: string,
    e: number,
    trainLoss: unknown,
    validationError: unknown,
    liveCompressionPct?: unknown,
  ) =>
    ({
      phase,
      epoch: e,
      trainLoss,
      validationError,
      ...(liveCompressionPct === undefined ? {} : { liveCompressionPct }),
    }) as MetricLine;

  /** The (x, y) of the drawn points of a chart, in its data's units as the circles place them. */
  const circles = (file: string) =>
    elements(parseXml(readFileSync(join(dir, 'plots', file), 'utf8'))).filter((e) => e.name === 'circle');

  test('an epoch without a validation error (null in metrics.jsonl) is not drawn as 0%', () => {
    // metrics.jsonl holds JSON: a NaN was written as null, and reads back as null.
    const metrics = metricsOf([
      epoch('baseline', 1, 0.3, 0.03),
      epoch('proximal', 1, null, null, 50),
      epoch('finetune', 1, 0.2, 0.02),
    ]);
    writeReport(dir, committed, metrics);
    readReport(dir);
    expect(circles('curves.svg')).toHaveLength(2);
    expect(circles('loss.svg')).toHaveLength(2);
    // A run without a validation split has no validation error at any epoch: nothing to draw.
    writeReport(
      dir,
      committed,
      metricsOf([epoch('baseline', 1, 0.3, null), epoch('proximal', 1, 0.25, null, null)]),
    );
    readReport(dir);
    expect(circles('curves.svg')).toHaveLength(0);
    expect(readFileSync(join(dir, 'plots', 'curves.svg'), 'utf8')).toContain(
      'no validation error was measured',
    );
    expect(circles('compression.svg')).toHaveLength(0);
  });

  test('one epoch, NaN and infinities leave no NaN, Infinity or undefined in any chart', () => {
    const metrics = metricsOf([
      epoch('baseline', 1, NaN, 0.03),
      epoch('proximal', 1, Infinity, 0.04, 0),
      epoch('finetune', 1, 0.2, Infinity),
    ]);
    writeReport(dir, committed, metrics);
    readReport(dir);
    for (const f of readdirSync(join(dir, 'plots')))
      expect(readFileSync(join(dir, 'plots', f), 'utf8')).not.toMatch(/NaN|Infinity|undefined/);
  });

  test('a layer removed whole, and latencies of 0, read as removed and n/a', () => {
    const r = structuredClone(committed);
    r.compressed.layers = r.compressed.layers.filter((l) => l.name !== 'dense2');
    r.compressed.latencyMs = { batch1: 0, batch256: r.compressed.latencyMs!.batch256 };
    writeReport(dir, r, []);
    const { md } = readReport(dir);
    expect(md).toMatch(/^\| dense2 +\| 300 +\| removed +\| 80\/300 \(output\) +\| 150,300 +\| 0 +\|$/m);
    expect(md).toMatch(/^\| latency, batch 1 +\| 0\.07 ms +\| 0\.00 ms +\| n\/a +\|$/m);
    expect(md).not.toMatch(/NaN|Infinity|undefined/);
  });
});
