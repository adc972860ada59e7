// The report charts: the legend sits in the corner of the plot the data cross least.
import { barChart, lineChart, paretoFront, type Series } from '../src/svg';
import { elements, parseXml, textOf } from './xml';

/** The legend's box (x, y, width, height) and the chart's path points, in pixels. */
function layout(svg: string): { box: number[]; points: [number, number][] } {
  const legend = svg.slice(svg.indexOf('<g class="legend">'));
  const box = legend
    .match(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/)!
    .slice(1)
    .map(Number);
  const points = [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map(
    (c) => [Number(c[1]), Number(c[2])] as [number, number],
  );
  return { box, points };
}

const inBox = ([x, y]: [number, number], [bx, by, bw, bh]: number[]) =>
  x >= bx && x <= bx + bw && y >= by && y <= by + bh;

const chart = (series: Series[], scatter = false) =>
  lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series, scatter, width: 640, height: 360 });

describe('lineChart legend', () => {
  const epochs = (f: (e: number) => number) =>
    Array.from({ length: 20 }, (_, e) => [e, f(e)] as [number, number]);

  it.each([
    [
      'a compression curve that rises, then holds at the top',
      [epochs((e) => Math.min(90, 30 * e))],
      'not top-right',
    ],
    ['a loss curve that falls, then holds at the bottom', [epochs((e) => 2 / (1 + e))], 'top'],
    [
      'two curves along the top and the bottom right',
      [epochs(() => 95), epochs((e) => (e < 10 ? 50 : 0))],
      'bottom-left',
    ],
  ])('%s: no point under the legend', (_name, points, where) => {
    const svg = chart(points.map((p, i) => ({ name: `series ${i}`, points: p })));
    const { box, points: pts } = layout(svg);
    expect(pts.length).toBe(points.flat().length);
    expect(pts.filter((p) => inBox(p, box))).toEqual([]);
    const [x, y] = box;
    if (where === 'not top-right') expect([x > 320, y < 180]).not.toEqual([true, true]);
    if (where === 'top') expect(y).toBeLessThan(180);
    if (where === 'bottom-left') expect([x < 320, y > 180]).toEqual([true, true]);
  });

  it('keeps the top-right corner when it is free, and escapes the names', () => {
    const svg = chart([{ name: 'a <b>', points: epochs((e) => -e) }]);
    const [x, y] = layout(svg).box;
    expect([x > 320, y < 180]).toEqual([true, true]);
    expect(svg).toContain('a &lt;b&gt;');
  });
});

/** Every attribute that holds a number or a path, parsed from a chart that must be well-formed XML. */
function numbersOf(svg: string): { name: string; attr: string; value: string }[] {
  return elements(parseXml(svg)).flatMap((el) =>
    Object.entries(el.attrs)
      .filter(([a]) => /^(x|y|x1|x2|y1|y2|cx|cy|r|width|height|d|transform|viewBox)$/.test(a))
      .map(([attr, value]) => ({ name: el.name, attr, value })),
  );
}

/** The tick labels of a 640 x 360 lineChart: along x (below the plot) and along y (right-aligned). */
function ticks(svg: string): { x: string[]; y: string[] } {
  const texts = elements(parseXml(svg)).filter((e) => e.name === 'text');
  return {
    x: texts.filter((t) => t.attrs.y === '326').map(textOf),
    y: texts.filter((t) => t.attrs['text-anchor'] === 'end').map(textOf),
  };
}

describe('charts of unusual data', () => {
  const next = (v: number) => {
    // The next double above v: values a rounding apart, as two computations of one figure give.
    const f = new Float64Array([v]);
    new BigInt64Array(f.buffer)[0] += 1n;
    return f[0];
  };
  it.each<[string, [number, number][][]]>([
    ['one point', [[[1, 1.46]]]],
    ['one point per series', [[[1, 3]], [[2, 5]]]],
    [
      'all values equal',
      [
        [
          [1, 2],
          [2, 2],
          [3, 2],
        ],
      ],
    ],
    [
      'NaN and infinities among the points',
      [
        [
          [1, NaN],
          [2, 0.3],
          [3, Infinity],
          [NaN, 1],
          [4, -Infinity],
          [5, 0.2],
        ],
      ],
    ],
    ['no finite point at all', [[[1, NaN]], []]],
    [
      'tiny magnitudes',
      [
        [
          [1e-9, 3e-9],
          [2e-9, 1e-9],
          [4e-9, 2e-9],
        ],
      ],
    ],
    [
      'huge magnitudes',
      [
        [
          [1e7, 2.5e7],
          [2e7, 1.2e7],
        ],
      ],
    ],
    [
      'values a rounding apart',
      [
        [
          [85.4, 1.46],
          [next(85.4), next(1.46)],
        ],
      ],
    ],
    [
      'values closer than four digits tell apart',
      [
        [
          [1, 1.2345],
          [2, 1.2346],
          [3, 1.23455],
        ],
      ],
    ],
    [
      'a huge value closer than the M suffix tells apart',
      [
        [
          [1, 1000000],
          [2, 1000300],
        ],
      ],
    ],
  ])('%s: well-formed, no NaN, Infinity or undefined in any attribute, distinct ticks', (_name, series) => {
    for (const scatter of [false, true]) {
      const svg = chart(
        series.map((points, i) => ({ name: `s${i}`, points, line: true })),
        scatter,
      );
      for (const { name, attr, value } of numbersOf(svg)) {
        expect([name, attr, value]).not.toEqual([
          name,
          attr,
          expect.stringMatching(/NaN|Infinity|undefined/),
        ]);
        if (attr === 'width' || attr === 'height' || attr === 'r')
          expect(Number(value)).toBeGreaterThanOrEqual(0);
      }
      const t = ticks(svg);
      for (const axis of [t.x, t.y]) {
        expect(axis.length).toBeGreaterThanOrEqual(1);
        expect(new Set(axis).size).toBe(axis.length);
        for (const label of axis) expect(label).toMatch(/^-?[\d.]+(e-?\d+)?[kM]?$/);
      }
      // Every finite point is drawn, and nothing else.
      const finite = series.flat().filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
      expect(elements(parseXml(svg)).filter((e) => e.name === 'circle')).toHaveLength(finite.length);
    }
  });

  it('a quantity that cannot be negative (yMin 0) gets no negative tick when it is flat at 0', () => {
    const svg = lineChart({
      title: 't',
      xLabel: 'x',
      yLabel: 'weights in dead groups (%)',
      yMin: 0,
      series: [
        {
          name: 'dead',
          points: [
            [1, 0],
            [2, 0],
            [3, 0],
          ],
        },
      ],
    });
    const { y } = ticks(svg);
    expect(y.length).toBeGreaterThan(1);
    for (const label of y) expect(Number(label)).toBeGreaterThanOrEqual(0);
  });

  it.each<[string, [number, number][], string[]]>([
    ['one epoch', [[1, 19.2]], ['1']],
    [
      'three epochs',
      [
        [1, 2.3],
        [2, 2.1],
        [3, 1.9],
      ],
      ['1', '2', '3'],
    ],
    [
      'twelve epochs',
      Array.from({ length: 12 }, (_, e) => [e + 1, 90 - e] as [number, number]),
      ['2', '4', '6', '8', '10', '12'],
    ],
  ])('an epoch axis (integerX) of %s has whole-epoch ticks only', (_name, points, want) => {
    const svg = lineChart({
      title: 't',
      xLabel: 'epoch',
      yLabel: 'y',
      integerX: true,
      series: [{ name: 's', points }],
    });
    expect(ticks(svg).x).toEqual(want);
  });

  it('labels of a billion and more, and of just under a million, read as numbers, not as 1.00e+4M or 1.00e+3k', () => {
    // A training loss that diverges before it turns NaN passes 1e9; 999,999 rounds up to the next suffix.
    const loss = chart([
      {
        name: 'loss',
        points: [
          [1, 2.3],
          [2, 4e9],
          [3, 1.2e10],
        ],
      },
    ]);
    const { y } = ticks(loss);
    expect(y.length).toBeGreaterThan(1);
    for (const label of y) expect(label).toMatch(/^-?[\d.]+(e\d+|[kM])?$/);
    const bars = barChart({
      title: 't',
      labels: ['a', 'b'],
      series: [{ name: 'v', values: [999999, 2.5e10] }],
      xLabel: 'v',
    });
    const texts = elements(parseXml(bars))
      .filter((e) => e.name === 'text')
      .map(textOf);
    expect(texts).toContain('1.00M');
    expect(texts).toContain('2.50e10');
  });

  it('a long layer name widens the margin and the chart rather than running off the left edge', () => {
    const chart = (labels: string[]) => {
      const svg = barChart({
        title: 't',
        labels,
        series: [{ name: 'units', values: labels.map(() => 5) }],
        xLabel: 'x',
      });
      const root = parseXml(svg);
      const label = elements(root).find((e) => e.name === 'text' && textOf(e) === labels[0])!;
      const svgElement = elements(root).find((e) => e.name === 'svg')!;
      return { width: Number(svgElement.attrs.width), labelRight: Number(label.attrs.x) };
    };
    // Short names: the chart as before (640 wide, labels ending at 104).
    expect(chart(['dense1', 'dense2'])).toMatchObject({ width: 640, labelRight: 104 });
    for (const name of [
      'block5_conv3_decomposed',
      'model/sequential_1/very_long_dense_layer_name_0123456789',
    ]) {
      const { width, labelRight } = chart([name, 'x']);
      // The label ends where the bars start, and its start (6.5 px a character, right-aligned) is inside.
      expect(labelRight - 6.5 * name.length).toBeGreaterThanOrEqual(0);
      expect(width).toBe(labelRight + 6 + 530);
    }
  });

  it('a bar of no finite value is not drawn and reads n/a', () => {
    const svg = barChart({
      title: 't',
      labels: ['dense1', 'dense2'],
      series: [
        { name: 'units', values: [NaN, 300] },
        { name: 'after', values: [Infinity, 12] },
      ],
      xLabel: 'units',
    });
    for (const { name, attr, value } of numbersOf(svg))
      expect([name, attr, value]).not.toEqual([name, attr, expect.stringMatching(/NaN|Infinity|undefined/)]);
    const texts = elements(parseXml(svg))
      .filter((e) => e.name === 'text')
      .map(textOf);
    expect(texts.filter((t) => t === 'n/a')).toHaveLength(2);
    expect(texts).toContain('300');
    expect(texts).toContain('12');
  });

  it('names with markup, quotes and characters XML forbids leave well-formed XML that shows them', () => {
    const hostile = `<script>alert("x")</script> & 'q' ]]> \u0001\uFFFF\uD800 ünï 日本 😀\nline`;
    const shown = ['\u0001', '\uFFFF', '\uD800'].reduce((t, c) => t.replace(c, '\uFFFD'), hostile);
    const line = lineChart({
      title: hostile,
      xLabel: hostile,
      yLabel: hostile,
      series: [
        {
          name: hostile,
          points: [
            [1, 2],
            [2, 3],
          ],
        },
      ],
    });
    const bars = barChart({
      title: hostile,
      labels: [hostile],
      series: [{ name: hostile, values: [3] }],
      xLabel: hostile,
    });
    for (const svg of [line, bars]) {
      const texts = elements(parseXml(svg))
        .filter((e) => e.name === 'text')
        .map(textOf);
      expect(texts.filter((t) => t === shown).length).toBeGreaterThanOrEqual(4);
      expect(elements(parseXml(svg)).map((e) => e.name)).not.toContain('script');
    }
  });
});

describe('paretoFront', () => {
  /** The front by definition: points no other point matches or beats in both, one of equal twins, finite only. */
  const reference = (points: [number, number][]) => {
    const finite = points.filter(([c, e]) => Number.isFinite(c) && Number.isFinite(e));
    const dominated = (p: [number, number]) =>
      finite.some((q) => q[0] >= p[0] && q[1] <= p[1] && (q[0] > p[0] || q[1] < p[1]));
    const keys = new Set(finite.filter((p) => !dominated(p)).map((p) => `${p[0]},${p[1]}`));
    return [...keys].map((k) => k.split(',').map(Number)).sort((a, b) => a[0] - b[0]);
  };

  it('agrees with a brute-force front on points with ties, duplicates and NaN', () => {
    // A seeded generator: small integer grids make ties and duplicates common.
    let s = 12345;
    const rand = (n: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n;
    for (let trial = 0; trial < 400; trial++) {
      const points = Array.from({ length: 1 + rand(9) }, () => {
        const c = rand(12) === 0 ? NaN : 80 + rand(5);
        const e = rand(10) === 0 ? NaN : 1 + rand(4) / 4;
        return [c, e] as [number, number];
      });
      expect([points, paretoFront(points)]).toEqual([points, reference(points)]);
    }
  });

  it('keeps one of two equal points, and drops a point another matches in error at a higher compression', () => {
    expect(
      paretoFront([
        [80, 2],
        [80, 2],
        [90, 2],
        [85, 1.5],
      ]),
    ).toEqual([
      [85, 1.5],
      [90, 2],
    ]);
    expect(paretoFront([[50, 1]])).toEqual([[50, 1]]);
    expect(paretoFront([])).toEqual([]);
  });
});
