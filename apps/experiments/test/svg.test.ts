// The report charts: the legend sits in the corner of the plot the data cross least.
import { barChart, lineChart, type Series } from '../src/svg';
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

describe('charts of unusual data', () => {
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
