// Surgery benchmark on deep chains: how analyze() and prune() scale with depth.
//   cd packages/surgery && node --require ../../scripts/ts-register.cjs bench/deep.ts [depths] [--old-max N]
// depths: comma-separated (default 64,128,256,512,1024). The previous round-by-round analysis
// (test/reference-plan.ts, the oracle the tests compare against) is timed up to --old-max layers
// (default 512; it is quadratic: 12.8 to 25.4 s at 1,024 Dense layers in four runs at load 3-4): the same models, the
// same run, so the two columns see the same machine load. Figures depend on the machine and its
// load; compare the ratios of one run. Each figure is a median (see time()).
//
// The chains are built so that death cascades along them, which is what made the old analysis
// quadratic: in every hidden layer unit 0 reads only unit 0 of the layer before (so the first
// layer's dead unit 0 makes every unit 0 constant in turn, front to back), and unit 1 is read
// only by unit 1 of the layer after (so the classifier's ignoring unit 1 makes every unit 1
// unused in turn, back to front). A few more units per layer are dead (zero kernel slices).
import { cpus, loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { analyze, prune } from '../src/index.js';
import { plan } from '../src/engine.js';
import { buildGraph } from '../src/graph.js';
import { planReference } from '../test/reference-plan.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Sets a layer's kernel (`kernel(i, o, k)` per entry [k, i, o]) and bias from host values. */
function setWeights(
  layer: tfl.layers.Layer,
  kernel: (i: number, o: number, r: () => number) => number,
  bias: (o: number, r: () => number) => number,
  r: () => number,
): void {
  const kw = layer.weights[0];
  const s = kw.shape as number[];
  const cin = s[s.length - 2];
  const cout = s[s.length - 1];
  const kv = new Float32Array(s.reduce((a, b) => a * b, 1));
  for (let p = 0; p < kv.length; p++) {
    const q = p % (cin * cout);
    kv[p] = kernel(Math.floor(q / cout), q % cout, r);
  }
  const bv = Float32Array.from({ length: cout }, (_, o) => bias(o, r));
  const ts = [tf.tensor(kv, s), tf.tensor(bv, [cout])];
  layer.setWeights(ts);
  tf.dispose(ts);
}

/** Which extra units (beyond 0 and 1) of hidden layer `l` are dead: one in three layers kills one. */
const extraDead = (l: number, width: number): number => (l % 3 === 0 ? 2 + (l % (width - 2)) : -1);

/** The cascading kernel entry from input i to unit o of hidden layer l (see the header). */
function cascade(l: number, width: number, i: number, o: number, r: () => number): number {
  if (o === extraDead(l, width)) return 0;
  if (o === 0) return l > 0 && i === 0 ? r() + 0.5 : 0; // unit 0 reads only unit 0 (layer 0: nothing)
  if (i === 1 && o !== 1) return 0; // unit 1 of the layer before is read only by unit 1
  return r() - 0.5;
}

/** `depth` Dense layers of `width` relu units, then a 4-unit linear classifier that ignores unit 1. */
function denseChain(depth: number, width = 8): tfl.LayersModel {
  const layers = Array.from({ length: depth }, (_, l) =>
    tfl.layers.dense({
      ...(l === 0 ? { inputShape: [width] } : {}),
      units: width,
      activation: 'relu',
      name: `d${l}`,
    }),
  );
  layers.push(tfl.layers.dense({ units: 4, name: 'out' }));
  const model = tfl.sequential({ layers });
  const r = rng(depth);
  layers.forEach((layer, l) =>
    l < depth
      ? setWeights(
          layer,
          (i, o, rr) => cascade(l, width, i, o, rr),
          () => 0.1 + 0.4 * r(),
          r,
        )
      : setWeights(
          layer,
          (i, _o, rr) => (i === 1 ? 0 : rr() - 0.5),
          () => r() - 0.5,
          r,
        ),
  );
  return model;
}

/**
 * `depth` 3x3 'same' Conv2D layers of `width` relu filters on 6x6 images, then global average
 * pooling and a 3-unit classifier that ignores channel 1. Dead filters have bias 0: their
 * constant 0 passes the next layer's zero padding unchanged, so it folds exactly.
 */
function convChain(depth: number, width = 4): tfl.LayersModel {
  const layers: tfl.layers.Layer[] = Array.from({ length: depth }, (_, l) =>
    tfl.layers.conv2d({
      ...(l === 0 ? { inputShape: [6, 6, width] } : {}),
      filters: width,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name: `c${l}`,
    }),
  );
  const head = tfl.layers.dense({ units: 3, name: 'out' });
  const model = tfl.sequential({ layers: [...layers, tfl.layers.globalAveragePooling2d({}), head] });
  const r = rng(depth + 1);
  const dead = (l: number, o: number) => o === 0 || o === extraDead(l, width);
  layers.forEach((layer, l) =>
    setWeights(
      layer,
      (i, o, rr) => cascade(l, width, i, o, rr),
      (o) => (dead(l, o) ? 0 : 0.1 + 0.4 * r()),
      r,
    ),
  );
  setWeights(
    head,
    (i, _o, rr) => (i === 1 ? 0 : rr() - 0.5),
    () => r() - 0.5,
    r,
  );
  return model;
}

/** Median milliseconds of `fn`: one run when it takes over 5 s, else at least 5 runs and 1 s in all (at most 25). */
function time(fn: () => void): number {
  const ts: number[] = [];
  let total = 0;
  do {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
    total += ts[ts.length - 1];
  } while (ts[0] <= 5000 && ts.length < 25 && (ts.length < 5 || total < 1000));
  return ts.sort((a, b) => a - b)[Math.floor((ts.length - 1) / 2)];
}

interface Row {
  model: string;
  depth: number;
  units: string;
  rounds: number;
  ms: Record<string, number>;
}

const COLUMNS = ['analyze', 'plan (old)', 'plan (new)', 'prune'] as const;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const oldIdx = args.indexOf('--old-max');
  const oldMax = oldIdx >= 0 ? Number(args[oldIdx + 1]) : 512;
  const positional = args.filter((a, k) => !a.startsWith('--') && args[k - 1] !== '--old-max');
  const depths = (positional[0] ?? '64,128,256,512,1024').split(',').map(Number);
  const info = await initBackend({ prefer: 'wasm', quiet: true });
  console.log(
    `backend: ${info.backend}; ${cpus().length} cores, 1-minute load average ${loadavg()[0].toFixed(2)}`,
  );
  console.log(`plan (old) timed up to ${oldMax} layers; ms are medians (one run when over 5 s)\n`);
  // Untimed warm-up, so that the first row does not pay for compiling the code it runs.
  for (const build of [denseChain, convChain]) {
    const model = build(16);
    analyze(model);
    planReference(buildGraph(model), 0);
    plan(buildGraph(model), 0);
    prune(model).model.dispose();
    model.dispose();
  }
  const rows: Row[] = [];
  for (const [name, build] of [
    ['Dense 8 units', denseChain],
    ['Conv2D 3x3 4 filters', convChain],
  ] as const) {
    for (const depth of depths) {
      const model = build(depth);
      const ms: Record<string, number> = {};
      ms.analyze = time(() => void analyze(model));
      let rounds = 0;
      let removed = '';
      ms['plan (new)'] = time(() => {
        const p = plan(buildGraph(model), 0);
        rounds = p.iterations;
        removed = Array.from(p.removed).join('');
      });
      // After the new analysis, so that the garbage the old one leaves does not land on it.
      if (depth <= oldMax) {
        ms['plan (old)'] = time(() => {
          const p = planReference(buildGraph(model), 0);
          if (Array.from(p.removed).join('') !== removed || p.iterations !== rounds)
            throw new Error(`${name}, ${depth} layers: the two analyses differ`);
        });
      }
      let units = '';
      ms.prune = time(() => {
        const { model: pruned, report } = prune(model);
        const before = report.layers.reduce((a, l) => a + l.unitsBefore, 0);
        const after = report.layers.reduce((a, l) => a + l.unitsAfter, 0);
        units = `${before} -> ${after}`;
        pruned.dispose();
      });
      model.dispose();
      rows.push({ model: name, depth, units, rounds, ms });
      console.log(
        `  ${name}, ${depth} layers: ${COLUMNS.map((c) => `${c} ${ms[c]?.toFixed(0) ?? '-'} ms`).join(', ')}`,
      );
    }
  }

  // One table: ms per call, and the growth ratio against the row of half the depth.
  const table: string[][] = [
    ['model', 'layers', 'units', 'rounds', ...COLUMNS.flatMap((c) => [`${c} ms`, 'x/2x'])],
  ];
  for (const row of rows) {
    const half = rows.find((x) => x.model === row.model && x.depth * 2 === row.depth);
    table.push([
      row.model,
      String(row.depth),
      row.units,
      String(row.rounds),
      ...COLUMNS.flatMap((c) => {
        const v = row.ms[c];
        const h = half?.ms[c];
        return [v == null ? '-' : v.toFixed(0), v != null && h != null ? (v / h).toFixed(2) : ''];
      }),
    ]);
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((r) => r[c].length)));
  console.log('');
  for (const r of table)
    console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
  console.log(`\n1-minute load average at the end: ${loadavg()[0].toFixed(2)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
