// The reports of unusual runs: free text with markup in it, and metrics with gaps.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resultsTable, tableRow, type RunResults } from '../src/index';
import {
  markdownTable,
  toHtml,
  writeReport,
  writeSweepReport,
  type MetricLine,
  type SweepPoint,
} from '../src/report';
import { elements, parseHtmlPage, parseXml, textOf, type XmlElement } from './xml';

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

/** The cells of a GFM table row: split on the pipes no backslash escapes. */
const cells = (line: string) => line.split(/(?<!\\)\|/).slice(1, -1);

/** Every Markdown table of `md` keeps its header's column count on every line. */
function expectTablesIntact(md: string) {
  const tables = md
    .trimEnd()
    .split('\n\n')
    .filter((b) => b.startsWith('|'));
  expect(tables.length).toBeGreaterThan(0);
  for (const t of tables) {
    const lines = t.split('\n');
    for (const l of lines) {
      expect(l).toMatch(/^\|.*\|$/);
      expect(cells(l)).toHaveLength(cells(lines[0]).length);
    }
  }
}

const HOSTILE = `<script>alert("x")</script> & 'q' | pipe \`tick\` **bold** &amp; <!-- ü 日本\nsecond line`;
/** HOSTILE as a page or a table shows it: on one line. */
const SHOWN = HOSTILE.replace('\n', ' ');

describe('free text in a run report', () => {
  const hostile = (): RunResults => {
    const r = structuredClone(committed);
    r.description = HOSTILE;
    r.command = `normprune reproduce lenet-500-300 --out '/tmp/a|b\`c <d>&e'`;
    r.thesis = { ...r.thesis!, note: HOSTILE };
    r.budget = { ...r.budget, note: HOSTILE };
    r.dataset = { ...r.dataset, note: HOSTILE };
    const name = `dense1 ${HOSTILE}`;
    r.baseline.layers[0].name = name;
    r.compressed.layers[0].name = name;
    r.groups[0].layer = name;
    return r;
  };

  test('leaves well-formed SVG and HTML that show it as written, and intact Markdown tables', () => {
    const r = hostile();
    writeReport(dir, r, []);
    const { md, page } = readReport(dir);
    const paragraphs = elements(page)
      .filter((e) => e.name === 'p')
      .map(textOf);
    expect(paragraphs[0]).toBe(SHOWN);
    expect(paragraphs).toContain(`Thesis: ${SHOWN}.`);
    expect(
      elements(page)
        .filter((e) => e.name === 'code')
        .map(textOf),
    ).toContain(r.command);
    const layerCells = elements(page)
      .filter((e) => e.name === 'td')
      .map(textOf);
    expect(layerCells).toContain(`dense1 ${SHOWN}`);
    expectTablesIntact(md);
    // No raw HTML in the Markdown: a renderer would run or hide it.
    expect(md).not.toMatch(/(?<!\\)<(script|!--)/);
    // The command reads back from its code span as written (a backtick in it does not end the span).
    const span = /Command: (`+) (.*?) \1 \(/.exec(md);
    expect(span?.[2]).toBe(r.command);
  });

  test('in the results table keeps its column count', () => {
    const t = resultsTable([tableRow(hostile(), `lambda-1e-9 ${HOSTILE}`)]);
    expectTablesIntact(t);
    expect(t).not.toMatch(/NaN|Infinity|undefined/);
  });

  test('a table cell with a pipe or a newline stays one cell', () => {
    const t = markdownTable(['a', 'b'], [['x | y\nz', 'w']]);
    expectTablesIntact(t);
    expect(cells(t.split('\n')[2]).map((c) => c.trim())).toEqual(['x \\| y z', 'w']);
  });

  test("an image's text in an attribute is quoted and escaped", () => {
    const page = parseHtmlPage(
      toHtml('t', [{ kind: 'img', file: `plots/"a'<b>&.svg`, alt: `"quoted" 'alt' <b>&` }], dir),
    );
    const img = elements(page).find((e) => e.name === 'img')!;
    expect(img.attrs).toEqual({ src: `plots/"a'<b>&.svg`, alt: `"quoted" 'alt' <b>&` });
  });
});

describe('a sweep report of unusual points', () => {
  const point = (label: string, compressionPct: number, validationErrorPct: number): SweepPoint => ({
    label,
    dir: label,
    lambda: 1e-9,
    compressionPct,
    validationErrorPct,
    testErrorPct: 1.5,
    baselineValidationErrorPct: 1.4,
    baselineTestErrorPct: 1.4,
  });

  it.each<[string, SweepPoint[]]>([
    ['one point', [point('lambda-1e-9', 85, 1.6)]],
    ['all points at one compression', [point('a', 85, 1.6), point('b', 85, 1.5), point('c', 85, 1.5)]],
    ['a point without a validation error', [point('a', 80, NaN), point('b', 85, 1.5)]],
    ['hostile labels', [point(HOSTILE, 80, 1.6), point(`${HOSTILE} 2`, 90, 1.7)]],
  ])('%s: well-formed, n/a for a missing figure, intact table', (_name, points) => {
    writeSweepReport(dir, `sweep ${HOSTILE}`, points, `note ${HOSTILE}`);
    const { md, page } = readReport(dir);
    expectTablesIntact(md);
    expect(md).not.toMatch(/NaN|Infinity|undefined|(?<!\\)<(script|!--)/);
    expect(
      elements(page)
        .filter((e) => e.name === 'p')
        .map(textOf),
    ).toContain(`note ${SHOWN}`);
    const rows = elements(page)
      .filter((e) => e.name === 'tr')
      .slice(1);
    expect(rows.map((tr) => textOf(tr.children[0] as XmlElement))).toEqual(
      points.map((p) => p.label.replace('\n', ' ')),
    );
    // The red points are the front of the points with a figure.
    const svg = readFileSync(join(dir, 'plots', 'pareto.svg'), 'utf8');
    const red = elements(parseXml(svg)).filter((e) => e.name === 'circle' && e.attrs.fill === '#d62728');
    const finite = points.filter((p) => Number.isFinite(p.validationErrorPct));
    const front = new Set(
      finite
        .filter(
          (p) =>
            !finite.some(
              (q) =>
                q.compressionPct >= p.compressionPct &&
                q.validationErrorPct <= p.validationErrorPct &&
                (q.compressionPct > p.compressionPct || q.validationErrorPct < p.validationErrorPct),
            ),
        )
        .map((p) => `${p.compressionPct},${p.validationErrorPct}`),
    );
    expect(red).toHaveLength(front.size);
  });
});

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
