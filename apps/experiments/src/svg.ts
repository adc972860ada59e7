// Hand-written SVG charts for the reports: no plotting dependency.
import { xmlText } from './escape.js';

/** One named series of (x, y) points. */
export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
  dashed?: boolean;
  /** Draw a line through the points even in a scatter chart. */
  line?: boolean;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** Ticks at a round step between `min` and `max`; with `integer`, a whole step (epochs: no epoch 1.5). */
function niceTicks(min: number, max: number, n = 5, integer = false): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  // 2.5 becomes 2 and a step below 1 becomes 1: ticks a little denser, or fewer, but whole.
  const step = integer ? Math.max(1, Math.floor(nice)) : nice;
  const out: number[] = [];
  // Counted, not summed: a step below the values' precision would never advance `v += step`.
  const first = Math.ceil(min / step);
  for (let k = 0; k <= 2 * n + 1; k++) {
    const v = (first + k) * step;
    if (v > max + step * 1e-9) break;
    const t = Number(v.toPrecision(12));
    if (t !== out[out.length - 1]) out.push(t);
  }
  return out;
}

/** Whether [lo, hi] is too narrow for ticks: equal, or apart by a rounding of their magnitude. */
function flat(lo: number, hi: number): boolean {
  return !(hi - lo > 1e-9 * Math.max(Math.abs(lo), Math.abs(hi)));
}

/**
 * A tick or bar label: `12.3k`, `4.50M`, and from a billion `1.20e10`. A value that rounds up to
 * 1000 of its suffix takes the next one (999,999 is `1.00M`, not `1.00e+3k`).
 */
function fmt(v: number, digits = 4): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  const scaled = (unit: number, suffix: string) => {
    const s = (v / unit).toPrecision(digits - 1);
    return Math.abs(Number(s)) < 1000 ? s + suffix : undefined;
  };
  const exponential = () => v.toExponential(digits - 2).replace('e+', 'e');
  if (a >= 1e9) return exponential();
  if (a >= 1e6) return scaled(1e6, 'M') ?? exponential();
  if (a >= 1e4) return scaled(1e3, 'k') ?? scaled(1e6, 'M')!;
  return String(Number(v.toPrecision(digits)));
}

/** Tick labels with `fmt`'s digits, or more where those would print two ticks alike. */
function tickLabels(ticks: number[]): string[] {
  for (let digits = 4; ; digits++) {
    const labels = ticks.map((t) => fmt(t, digits));
    if (digits >= 15 || new Set(labels).size === labels.length) return labels;
  }
}

/** Points along a polyline in pixels, about every 4 px when `joined`, else the points themselves. */
function samplePath(p: [number, number][], joined: boolean): [number, number][] {
  if (!joined || p.length < 2) return p;
  const out: [number, number][] = [p[0]];
  for (let k = 1; k < p.length; k++) {
    const [ax, ay] = p[k - 1];
    const [bx, by] = p[k];
    const n = Math.max(1, Math.ceil(Math.hypot(bx - ax, by - ay) / 4));
    for (let j = 1; j <= n; j++) out.push([ax + ((bx - ax) * j) / n, ay + ((by - ay) * j) / n]);
  }
  return out;
}

/** A line (or scatter) chart with axes, ticks and a legend in the corner the data leave freest. */
export function lineChart(o: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  scatter?: boolean;
  width?: number;
  height?: number;
  yMin?: number;
  /** What the plot says when no point has finite coordinates (default: that there are none). */
  empty?: string;
  /** The x values are whole (epochs): ticks only at whole values, and one value alone gets its own tick. */
  integerX?: boolean;
}): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const m = { l: 64, r: 16, t: 32, b: 48 };
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  let [x0, x1] = pts.length ? [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))] : [0, 1];
  let [y0, y1] = pts.length ? [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))] : [0, 1];
  if (o.yMin !== undefined) y0 = Math.min(y0, o.yMin);
  if (flat(x0, x1)) [x0, x1] = o.integerX ? [x0 - 0.5, x1 + 0.5] : [x0 - 1, x1 + 1];
  // A flat quantity with a floor (a compression still at 0) is drawn above the floor, not around it.
  if (flat(y0, y1)) [y0, y1] = o.yMin !== undefined && y0 >= o.yMin ? [y0, y0 + 1] : [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${xmlText(o.title)}</text>`,
  );
  const xTicks = niceTicks(x0, x1, 5, o.integerX);
  tickLabels(xTicks).forEach((label, i) => {
    const t = xTicks[i];
    parts.push(`<line x1="${sx(t)}" y1="${m.t}" x2="${sx(t)}" y2="${H - m.b}" stroke="#eee"/>`);
    parts.push(`<text x="${sx(t)}" y="${H - m.b + 14}" text-anchor="middle">${label}</text>`);
  });
  const yTicks = niceTicks(y0, y1);
  tickLabels(yTicks).forEach((label, i) => {
    const t = yTicks[i];
    parts.push(`<line x1="${m.l}" y1="${sy(t)}" x2="${W - m.r}" y2="${sy(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 4}" y="${sy(t) + 4}" text-anchor="end">${label}</text>`);
  });
  parts.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`,
  );
  // Empty axes alone would read as a chart whose points went missing.
  if (!pts.length)
    parts.push(
      `<text x="${(m.l + W - m.r) / 2}" y="${(m.t + H - m.b) / 2}" text-anchor="middle" fill="#666">${xmlText(o.empty ?? 'no finite values to plot')}</text>`,
    );
  parts.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${xmlText(o.xLabel)}</text>`,
  );
  parts.push(
    `<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${xmlText(o.yLabel)}</text>`,
  );
  const drawn = o.series.map((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  o.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const p = drawn[i];
    if ((!o.scatter || s.line) && p.length > 1) {
      const d = p.map(([x, y], k) => `${k ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
      parts.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`,
      );
    }
    for (const [x, y] of p)
      parts.push(
        `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="${o.scatter ? 3.5 : 2}" fill="${color}"/>`,
      );
  });
  // The legend goes in the corner of the plot that the data cross least.
  const lw = 24 + 6.5 * Math.max(0, ...o.series.map((s) => s.name.length));
  const lh = 14 * o.series.length + 6;
  const pixels = o.series.flatMap((s, i) =>
    samplePath(
      drawn[i].map(([x, y]) => [sx(x), sy(y)] as [number, number]),
      !o.scatter || !!s.line,
    ),
  );
  const corners: [number, number][] = [
    [W - m.r - lw - 4, m.t + 4],
    [m.l + 4, m.t + 4],
    [W - m.r - lw - 4, H - m.b - lh - 4],
    [m.l + 4, H - m.b - lh - 4],
  ];
  const covered = corners.map(
    ([cx, cy]) =>
      pixels.filter(([px, py]) => px >= cx - 3 && px <= cx + lw + 3 && py >= cy - 3 && py <= cy + lh + 3)
        .length,
  );
  const [lx, ly0] = corners[covered.indexOf(Math.min(...covered))];
  parts.push(`<g class="legend">`);
  parts.push(
    `<rect x="${lx.toFixed(1)}" y="${ly0}" width="${lw.toFixed(1)}" height="${lh}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`,
  );
  o.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const ly = ly0 + 11 + i * 14;
    parts.push(`<rect x="${(lx + 5).toFixed(1)}" y="${ly - 8}" width="10" height="10" fill="${color}"/>`);
    parts.push(`<text x="${(lx + 19).toFixed(1)}" y="${ly + 1}">${xmlText(s.name)}</text>`);
  });
  parts.push('</g>');
  parts.push('</svg>');
  return parts.join('\n');
}

/** Grouped horizontal bars: one row per label, one bar per series. */
export function barChart(o: {
  title: string;
  labels: string[];
  series: { name: string; values: number[]; color?: string }[];
  xLabel: string;
}): string {
  const rowH = 10 * o.series.length + 10;
  // The labels (layer names) sit left of the bars, right-aligned: the margin grows with the longest
  // (about 6.5 px a character at this font size), and the chart with it, so that none is cut off.
  const m = {
    l: Math.max(110, Math.ceil(12 + 6.5 * Math.max(0, ...o.labels.map((l) => l.length)))),
    r: 90,
    t: 32,
    b: 40,
  };
  const W = 530 + m.l;
  const H = m.t + m.b + rowH * o.labels.length + 16;
  const max = Math.max(1, ...o.series.flatMap((s) => s.values.filter(Number.isFinite)));
  const sx = (v: number) => m.l + (v / max) * (W - m.l - m.r);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${xmlText(o.title)}</text>`,
  );
  o.labels.forEach((label, i) => {
    const y = m.t + i * rowH;
    parts.push(`<text x="${m.l - 6}" y="${y + rowH / 2 + 2}" text-anchor="end">${xmlText(label)}</text>`);
    o.series.forEach((s, j) => {
      const v = s.values[i] ?? 0;
      const color = s.color ?? PALETTE[j % PALETTE.length];
      // A figure results.json lacks (null, read back as NaN) has no bar, and says so.
      if (!Number.isFinite(v)) {
        parts.push(`<text x="${m.l + 3}" y="${y + 11 + j * 10}">n/a</text>`);
        return;
      }
      parts.push(
        `<rect x="${m.l}" y="${y + 4 + j * 10}" width="${Math.max(0, sx(v) - m.l).toFixed(1)}" height="8" fill="${color}"/>`,
      );
      parts.push(`<text x="${sx(v) + 3}" y="${y + 11 + j * 10}">${fmt(v)}</text>`);
    });
  });
  const ly = H - m.b + 14;
  o.series.forEach((s, j) => {
    parts.push(
      `<rect x="${m.l + j * 160}" y="${ly}" width="10" height="10" fill="${s.color ?? PALETTE[j % PALETTE.length]}"/>`,
    );
    parts.push(`<text x="${m.l + j * 160 + 14}" y="${ly + 9}">${xmlText(s.name)}</text>`);
  });
  parts.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 4}" text-anchor="middle">${xmlText(o.xLabel)}</text>`,
  );
  parts.push('</svg>');
  return parts.join('\n');
}

/** The Pareto front (lowest error for at least that compression) of (compression, error) points. */
export function paretoFront(points: [number, number][]): [number, number][] {
  // A point without a figure (a NaN error: no validation split) is on no front, and
  // would break the sort's order for the others.
  const sorted = points
    .filter(([c, e]) => Number.isFinite(c) && Number.isFinite(e))
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const front: [number, number][] = [];
  let best = Infinity;
  for (const p of sorted) {
    if (p[1] < best) {
      front.push(p);
      best = p[1];
    }
  }
  return front.sort((a, b) => a[0] - b[0]);
}
