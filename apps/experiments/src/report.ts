// report.md / report.html of a run (and of a sweep), built from one document
// model so both say the same thing, with the SVG plots beside them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunResults } from './pipeline.js';
import { barChart, lineChart, paretoFront, type Series } from './svg.js';
import { type Shape, writeFileAtomic } from './fsutil.js';
import { isReduced, typedBudget } from './config.js';
import { bisect, changePp, changeSePp } from './paired.js';
import { latencyCallsNote } from './measure.js';
import { loadText, oversubscribed, type CpuLoad } from './load.js';
import { budgetText, ciText, int, ms, pct, pp, pValueText, seconds } from './format.js';
import { codeSpan, markdownText, xmlAttribute, xmlText } from './escape.js';
import { currentCostWeighting, isFormerCostWeighting } from './cost-weighting.js';

/** A block of a report. */
export type Block =
  | { kind: 'h'; text: string; level?: number }
  | { kind: 'p'; text: string }
  | { kind: 'table'; head: string[]; rows: string[][] }
  | { kind: 'img'; file: string; alt: string }
  | { kind: 'code'; text: string };

/**
 * A Markdown table with its columns padded to a common width, the layout
 * Prettier gives tables: generated reports and READMEs pass `prettier --check`.
 */
export function markdownTable(head: string[], rows: string[][]): string {
  // A pipe ends a GFM cell and a line break the row, wherever they come from.
  const cell = (c: string | undefined) => (c ?? '').replace(/\r\n?|\n/g, ' ').replace(/\|/g, '\\|');
  head = head.map(cell);
  rows = rows.map((r) => r.map(cell));
  const width = head.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${width.map((w, i) => (cells[i] ?? '').padEnd(w)).join(' | ')} |`;
  return [line(head), `| ${width.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** Renders blocks as Markdown. */
export function toMarkdown(blocks: Block[]): string {
  return (
    blocks
      .map((b) => {
        switch (b.kind) {
          case 'h':
            return `${'#'.repeat(b.level ?? 2)} ${b.text}`;
          case 'p':
            return b.text;
          case 'table':
            return markdownTable(b.head, b.rows);
          case 'img':
            return `![${b.alt}](${b.file})`;
          case 'code':
            return '```\n' + b.text + '\n```';
        }
      })
      .join('\n\n') + '\n'
  );
}

/**
 * The HTML of a block's inline Markdown: code spans, backslash escapes (`markdownText`'s)
 * and `**strong**`. Code spans and escapes come first, as in CommonMark: their text is literal.
 */
function inline(md: string): string {
  const held: string[] = [];
  // A private-use character marks where a literal piece goes back; one in the text is not kept.
  const hold = (html: string) => `\uE000${held.push(html) - 1}\uE001`;
  const s = md.replace(/[\uE000\uE001]/g, '\uFFFD');
  let text = '';
  for (let i = 0; i < s.length;) {
    if (s[i] === '\\' && /[!-/:-@[-`{-~]/.test(s[i + 1] ?? '')) {
      text += hold(xmlText(s[i + 1]));
      i += 2;
    } else if (s[i] === '`') {
      const fence = /^`+/.exec(s.slice(i))![0];
      const close = new RegExp(`(?<!\`)${fence}(?!\`)`, 'g');
      close.lastIndex = i + fence.length;
      const end = close.exec(s);
      if (!end) {
        // Without a closing fence of its length, the backticks are text.
        text += hold(fence);
        i += fence.length;
        continue;
      }
      let code = s.slice(i + fence.length, end.index).replace(/\r\n?|\n/g, ' ');
      if (/^ [^]* $/.test(code) && code.trim()) code = code.slice(1, -1);
      text += hold(`<code>${xmlText(code)}</code>`);
      i = end.index + fence.length;
    } else text += s[i++];
  }
  return xmlText(text)
    .replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>')
    .replace(/\uE000(\d+)\uE001/g, (_m, k: string) => held[Number(k)]);
}

/**
 * The report `text` of a run (its report.md, or with `html` its report.html) with its command
 * `from` named as `to` instead: the copy `report --export` writes names the command as it is
 * published. Unchanged when it names another (a report of an earlier version, left as it was).
 */
export function reportWithCommand(text: string, html: boolean, from: string, to: string): string {
  return withCodeSpan(text, html, 'Command: ', from, to);
}

/**
 * The report `text` of a run (report.md, or with `html` report.html) with the path its data was
 * read from, `from`, named as `to` instead ("read from `data`"), as {@link reportWithCommand} does
 * the command.
 */
export function reportWithSource(text: string, html: boolean, from: string, to: string): string {
  return withCodeSpan(text, html, ', read from ', from, to);
}

/** `text` with the code span of `from` after `label` made one of `to` (markdown, or with `html` HTML). */
function withCodeSpan(text: string, html: boolean, label: string, from: string, to: string): string {
  const shown = (s: string) => `${label}${html ? inline(codeSpan(s)) : codeSpan(s)}`;
  return text.replace(shown(from), () => shown(to));
}

/** Renders blocks as a standalone HTML page with the SVGs inlined. */
export function toHtml(title: string, blocks: Block[], dir: string): string {
  const body = blocks
    .map((b) => {
      switch (b.kind) {
        case 'h':
          return `<h${b.level ?? 2}>${inline(b.text)}</h${b.level ?? 2}>`;
        case 'p':
          return `<p>${inline(b.text)}</p>`;
        case 'table':
          return `<table><thead><tr>${b.head.map((h) => `<th>${inline(h)}</th>`).join('')}</tr></thead><tbody>${b.rows
            .map((r) => `<tr>${r.map((c) => `<td>${inline(c)}</td>`).join('')}</tr>`)
            .join('')}</tbody></table>`;
        case 'img':
          try {
            return `<figure>${readFileSync(join(dir, b.file), 'utf8')}<figcaption>${xmlText(b.alt)}</figcaption></figure>`;
          } catch {
            return `<p><img src="${xmlAttribute(b.file)}" alt="${xmlAttribute(b.alt)}"></p>`;
          }
        case 'code':
          return `<pre>${xmlText(b.text)}</pre>`;
      }
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${xmlText(title)}</title>
<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}pre{background:#f6f6f6;padding:8px;overflow:auto}</style>
</head><body>
${body}
</body></html>
`;
}

/** What a run records of a model (results.json's baseline and compressed, a kept baseline's stats). */
export const MODEL_STATS_SHAPE: Shape = {
  params: 'number',
  nonzeros: 'number',
  macs: 'number',
  testError: 'number',
  validationError: 'number',
  layers: [{}],
};

/** What `report` reads of a results.json: the fields every version of normprune has written. */
export const RESULTS_SHAPE: Shape = {
  experiment: 'string',
  seed: 'number',
  budget: { name: 'string', spec: {} },
  backend: { name: 'string', tfBackend: 'string' },
  dataset: { name: 'string', train: 'number', validation: 'number', test: 'number' },
  baseline: MODEL_STATS_SHAPE,
  prunedBeforeFinetune: { testError: 'number', validationError: 'number' },
  compressed: MODEL_STATS_SHAPE,
  groups: [{}],
  compressionPct: 'number',
  macsReductionPct: 'number',
  errorDeltaPp: 'number',
  exported: { dir: 'string', bytes: 'number' },
  timings: { baselineSec: 'number', proximalSec: 'number', finetuneSec: 'number', totalSec: 'number' },
};

/** One epoch line of metrics.jsonl. */
export interface MetricLine {
  phase: string;
  epoch: number;
  trainLoss: number;
  validationError: number;
  liveCompressionPct?: number;
  numTensors?: number;
  [k: string]: unknown;
}

/**
 * Writes the run's plots into RUN_DIR/plots and returns their blocks. `metrics` undefined:
 * the run's metrics.jsonl is missing, so the training curves are left out (with a note), and
 * their files from an earlier report stay as they are.
 */
function plots(dir: string, r: RunResults, metrics: MetricLine[] | undefined): Block[] {
  const files: Block[] = [];
  const write = (name: string, svg: string, alt: string) => {
    writeFileAtomic(join(dir, 'plots', name), svg);
    files.push({ kind: 'img', file: `plots/${name}`, alt });
  };
  if (metrics) curvePlots(metrics, write);
  else
    files.push({
      kind: 'p',
      text: "**Note:** this run's `metrics.jsonl` is missing, so the training curves (validation error, training loss, weights in dead groups per epoch) are left out; the figures above come from results.json.",
    });
  unitPlots(r, write);
  return files;
}

/** The plots of metrics.jsonl's epoch lines: validation error, training loss, dead-group weights. */
function curvePlots(metrics: MetricLine[], write: (name: string, svg: string, alt: string) => void): void {
  // metrics.jsonl is JSON: a figure that was NaN (no validation split) reads back as null,
  // which arithmetic would turn into 0; such an epoch has no point.
  const byPhase = (key: 'validationError' | 'trainLoss', scale = 1) => {
    const series: Series[] = [];
    let x = 0;
    for (const phase of ['baseline', 'proximal', 'finetune']) {
      const pts: [number, number][] = [];
      for (const m of metrics.filter((m) => m.phase === phase)) {
        x++;
        const y = m[key];
        if (typeof y === 'number') pts.push([x, scale * y]);
      }
      if (pts.length) series.push({ name: phase, points: pts });
    }
    return series;
  };
  write(
    'curves.svg',
    lineChart({
      title: 'Validation error per epoch',
      xLabel: 'epoch (all phases)',
      integerX: true,
      yLabel: 'validation error (%)',
      series: byPhase('validationError', 100),
      empty: 'no validation error was measured (no validation split)',
    }),
    'validation error per epoch, by phase',
  );
  write(
    'loss.svg',
    lineChart({
      title: 'Training loss per epoch',
      xLabel: 'epoch (all phases)',
      integerX: true,
      yLabel: 'cross-entropy',
      series: byPhase('trainLoss'),
    }),
    'training loss per epoch, by phase',
  );
  const prox = metrics.filter((m) => m.phase === 'proximal' && m.liveCompressionPct !== undefined);
  // A run without proximal epochs (a baseline-only control) has nothing to plot here.
  if (prox.length)
    write(
      'compression.svg',
      lineChart({
        title: 'Weights in dead groups during proximal training',
        xLabel: 'proximal epoch',
        integerX: true,
        yLabel: 'weights in dead groups (%)',
        yMin: 0,
        series: [{ name: 'dead-group weights', points: prox.map((m, i) => [i + 1, m.liveCompressionPct!]) }],
      }),
      'share of all weights in dead groups at each proximal epoch: a lower bound on the parameters removed, which also count what surgery removes with the dead groups (a unit whose every outgoing weight is dead loses its incoming weights and bias too)',
    );
}

/** The plots of results.json's layers: units per layer, groups per decomposed layer. */
function unitPlots(r: RunResults, write: (name: string, svg: string, alt: string) => void): void {
  const units = r.baseline.layers.filter((l) => l.units !== undefined);
  const after = new Map(r.compressed.layers.map((l) => [l.name, l]));
  write(
    'units.svg',
    barChart({
      title: 'Units per layer (neurons / filters)',
      labels: units.map((l) => l.name),
      series: [
        { name: 'baseline', values: units.map((l) => l.units!) },
        { name: 'compressed', values: units.map((l) => after.get(l.name)?.units ?? 0) },
      ],
      xLabel: 'units',
    }),
    'surviving units per layer',
  );
  const withGroups = r.groups;
  if (!withGroups.length) return;
  // With a prune rule that cut, its cut is drawn apart from what proximal training left.
  const cut = ruleCut(r);
  write(
    'groups.svg',
    barChart({
      title: cut ? 'Groups per decomposed layer' : 'Live groups per decomposed layer',
      labels: withGroups.map((g) => `${g.layer} (${g.granularity})`),
      series: [
        { name: 'groups', values: withGroups.map((g) => g.groups) },
        ...(cut
          ? [
              { name: 'live after proximal', values: withGroups.map((g) => g.liveAfterProximal ?? g.live) },
              { name: 'left by prune rule', values: withGroups.map((g) => g.live) },
            ]
          : [{ name: 'live', values: withGroups.map((g) => g.live) }]),
      ],
      xLabel: 'groups',
    }),
    cut
      ? `groups per decomposed layer: live (magnitude > 0) after proximal training, and left by the config's prune rule (${ruleFields(r.pruneRule!).join(', ')}), which cut groups after proximal training`
      : 'live groups (magnitude > 0) per decomposed layer after proximal training',
  );
}

/**
 * True when the run's config had a prune rule (results.json `pruneRule`) and recorded the groups
 * live before it (`liveAfterProximal`): its report then tells the rule's cut from what proximal
 * training left. Results without them (every run before they were recorded) render as before.
 */
function ruleCut(r: RunResults): boolean {
  return r.pruneRule !== undefined && r.groups.some((g) => g.liveAfterProximal !== undefined);
}

/** The config fields of a prune rule that cut: `prune.keep`, `prune.keepFilters`, `prune.threshold`. */
function ruleFields(rule: NonNullable<RunResults['pruneRule']>): string[] {
  return [
    ...(rule.keepFilters ? ['prune.keepFilters'] : []),
    ...(rule.keep ? ['prune.keep'] : []),
    ...(rule.threshold > 0 ? ['prune.threshold'] : []),
  ];
}

/** The paragraph stating a run's prune rule and, layer by layer, the groups it cut. */
function pruneRuleText(r: RunResults): string {
  const rule = r.pruneRule!;
  const parts = [
    ...(rule.keepFilters
      ? [
          `${codeSpan('prune.keepFilters')} ${codeSpan(JSON.stringify(rule.keepFilters))} (at most that many filters of a Conv2D layer, those of largest norm, applied first)`,
        ]
      : []),
    ...(rule.keep
      ? [
          `${codeSpan('prune.keep')} ${codeSpan(JSON.stringify(rule.keep))} (at most that many groups of the layer, those with the largest magnitudes)`,
        ]
      : []),
    ...(rule.threshold > 0
      ? [`${codeSpan('prune.threshold')} ${rule.threshold} (magnitudes at or below it count as dead)`]
      : []),
  ];
  const cut = r.groups.filter((g) => g.liveAfterProximal !== undefined && g.liveAfterProximal !== g.live);
  const layers = cut.length
    ? `It cut ${cut
        .map(
          (g) =>
            `${markdownText(g.layer)}: ${int(g.liveAfterProximal!)} of ${int(g.groups)} groups live after proximal training, ${int(g.live)} left by the rule`,
        )
        .join(
          '; ',
        )}. The live groups below, the compressed model and the parameters removed are after this cut, not what proximal training alone left.`
    : 'It cut no group: the live groups below are those proximal training left.';
  return `**Prune rule:** this run's config cuts groups after proximal training, before surgery: ${parts.join('; ')}. ${layers}`;
}

/** `-85.90%`: the change from `before` to `after`; one too small to print reads `0.00%`, not `-0.00%`. */
function relativeChange(before: number, after: number): string {
  return signedPct(100 * (after / before - 1));
}

/** A change in %, with one that rounds to 0 shown as 0.00%, not -0.00%. */
function signedPct(v: number): string {
  return pct(Math.abs(v) < 0.005 ? 0 : v);
}

/**
 * `x1.63 faster`, or `x0.67 (slower)` when the compressed model takes longer; the words are decided
 * on the ratio as printed, so 0.996 and 1.004 read `x1.00 (same)`.
 */
function speedupText(baselineMs: number, compressedMs: number): string {
  const ratio = baselineMs / compressedMs;
  // A latency of 0 (below the timer's resolution) or a missing one gives no ratio.
  if (!(Number.isFinite(ratio) && ratio > 0)) return 'n/a';
  const shown = ratio.toFixed(2);
  const r = Number(shown);
  return `x${shown} ${r > 1 ? 'faster' : r < 1 ? '(slower)' : '(same)'}`;
}

/** The input the exported model expects, as the run scaled its images. */
function inputText(r: RunResults): string {
  const st = r.dataset.stats;
  if (st) {
    const list = (v: number[]) => `[${v.map((x) => x.toFixed(4)).join(', ')}]`;
    return `NHWC input standardised per channel, (pixel / 255 - mean) / std with mean ${list(st.mean)} and std ${list(st.std)} (results.json, dataset.stats)`;
  }
  // Results written before the statistics were recorded: CIFAR-10 is the one standardised set.
  return r.dataset.name === 'cifar10' ? 'standardised NHWC input' : '[0, 1]-scaled NHWC input';
}

/**
 * The **Reduced budget** statement of a run or sweep whose budget differs from its config as
 * written, else undefined. The flag the run recorded decides (a run of an older normprune
 * recorded it by the rules of its time, and its table row by the same flag). The budget's note is
 * said only for a preset used as it is: settings typed after a preset (`reduced,epochs.baseline=31`,
 * named `reduced+custom`) make the preset's note wrong, and runs of an older normprune recorded it
 * all the same; the settings themselves say what ran.
 */
function reducedBudgetText(budget: RunResults['budget'] | undefined, whose: string): string | undefined {
  if (!budget || !(budget.reduced ?? isReduced(budget.spec))) return undefined;
  const note = budget.note && !budget.name.endsWith('+custom') ? ` (${markdownText(budget.note)})` : '';
  return `**Reduced budget** (${codeSpan(budget.name)}: ${markdownText(JSON.stringify({ ...budget.spec, note: undefined }))}): ${whose} data, validation split, batch size, width or epochs differ from the config as written${note}; its figures are not a full reproduction.`;
}

/**
 * The report of one run as blocks (also used by `normprune report`); `metrics` undefined when
 * the run's metrics.jsonl is missing (the report says so instead of drawing empty curves).
 */
export function runReportBlocks(dir: string, r: RunResults, metrics: MetricLine[] | undefined): Block[] {
  const b = r.baseline;
  const c = r.compressed;
  const blocks: Block[] = [
    {
      kind: 'h',
      level: 1,
      text: `${markdownText(r.experiment)}: structured pruning by magnitude x direction decomposition`,
    },
  ];
  blocks.push({ kind: 'p', text: markdownText(r.description) });
  if (r.command)
    blocks.push({
      kind: 'p',
      text: `Command: ${codeSpan(r.command)} (seed ${r.seed}, backend ${r.backend.name}).`,
    });
  const reduced = reducedBudgetText(r.budget, "this run's");
  if (reduced) blocks.push({ kind: 'p', text: reduced });
  blocks.push({
    kind: 'p',
    text:
      `Data: ${r.dataset.name}, ${int(r.dataset.train)} training images, ` +
      (r.dataset.validation > 0
        ? `${int(r.dataset.validation)} validation images (held out of the training set; all tuning uses them), `
        : 'no validation split (every training image trains; nothing was tuned on this run), ') +
      `${int(r.dataset.test)} test images` +
      (r.dataset.source ? `, read from ${codeSpan(r.dataset.source)}` : '') +
      `.${r.dataset.note ? ` **Note:** ${markdownText(r.dataset.note)}.` : ''}`,
  });
  blocks.push({ kind: 'h', text: 'Against the thesis' });
  const t = r.thesis;
  blocks.push({
    kind: 'table',
    head: ['', 'thesis', 'this run'],
    rows: [
      [
        'parameters removed',
        t?.compressionPct !== undefined ? pct(t.compressionPct) : 'n/a',
        pct(r.compressionPct),
      ],
      ['test error change', t?.errorDeltaPp !== undefined ? pp(t.errorDeltaPp) : 'n/a', pp(r.errorDeltaPp)],
    ],
  });
  if (t?.note) blocks.push({ kind: 'p', text: `Thesis: ${markdownText(t.note)}.` });
  if (ruleCut(r))
    blocks.push({
      kind: 'p',
      text: `**Note:** the parameters removed include what the config's prune rule (${ruleFields(r.pruneRule!)
        .map(codeSpan)
        .join(', ')}) cut after proximal training: see Surviving units per layer.`,
    });
  if (r.target) {
    blocks.push({
      kind: 'p',
      text: `Target: at least ${r.target.minCompressionPct}% of parameters removed with test error at most baseline ${pp(r.target.maxErrorDeltaPp)}: ${targetCell(tableRow(r), r.compressionPct, r.errorDeltaPp)}.`,
    });
  }
  blocks.push({ kind: 'h', text: 'Baseline and compressed model' });
  blocks.push({
    kind: 'table',
    head: ['', 'baseline', 'compressed', 'change'],
    rows: [
      // Against the baseline's parameters, as "parameters removed" is: where the baseline has exact
      // zeros, a change against its non-zeros would print a second, different figure.
      ['parameters (non-zero)', int(b.nonzeros), int(c.nonzeros), signedPct(-r.compressionPct)],
      ['parameters (stored)', int(b.params), int(c.params), relativeChange(b.params, c.params)],
      ['MACs per image', int(b.macs), int(c.macs), relativeChange(b.macs, c.macs)],
      ['test error', pct(100 * b.testError), pct(100 * c.testError), pp(r.errorDeltaPp)],
      [
        'validation error',
        pct(100 * b.validationError),
        pct(100 * c.validationError),
        pp(100 * (c.validationError - b.validationError)),
      ],
      [
        'latency, batch 1',
        ms(b.latencyMs?.batch1),
        ms(c.latencyMs?.batch1),
        b.latencyMs && c.latencyMs ? speedupText(b.latencyMs.batch1, c.latencyMs.batch1) : '',
      ],
      [
        'latency, batch 256',
        ms(b.latencyMs?.batch256),
        ms(c.latencyMs?.batch256),
        b.latencyMs && c.latencyMs ? speedupText(b.latencyMs.batch256, c.latencyMs.batch256) : '',
      ],
    ],
  });
  const callsNote = latencyCallsNote(r.latencyCalls);
  blocks.push({
    kind: 'p',
    text: `Right after pruning, before fine-tuning: test error ${pct(100 * r.prunedBeforeFinetune.testError)}, validation error ${pct(100 * r.prunedBeforeFinetune.validationError)}. Parameters count every weight (kernels, biases, BatchNormalization statistics); "parameters removed" is 1 - non-zero parameters after / parameters before${
      b.nonzeros < b.params
        ? `, and so is the change in non-zero parameters above: the baseline already had ${int(b.params - b.nonzeros)} parameter${b.params - b.nonzeros === 1 ? '' : 's'} exactly 0, which count as removed`
        : ''
    }. MACs count non-zero kernel weights times output positions. Latency: median of \`model.predict\` on the ${r.backend.name} backend${r.backend.tfBackend !== r.backend.name ? ` (${r.backend.tfBackend})` : ''}, measured on a shared machine${
      r.latencyMethod === 'paired'
        ? ', both models back to back at the end of the run (calls alternate between them), so that load which changes over the run affects both alike'
        : "; this run predates paired timing: each model was timed right after its own training, under the load of that moment, and batch 256 ran as predict's chunks of 32, so the ratio is noisy"
    }.${latencyLoadText(r.latencyLoad)}${callsNote ? ` ${callsNote}.` : ''}`,
  });
  const pt = r.pairedTest;
  blocks.push({
    kind: 'p',
    text: !pt
      ? 'No paired test: this run predates normprune keeping the baseline model to the end of a run.'
      : pt.onlyBaselineWrong + pt.onlyCompressedWrong === 0
        ? `Paired test on the ${int(pt.n)} test images: the two models classify every one of them alike (${int(pt.bothWrong)} both get wrong), so the test error change is exactly 0 on these images, and they give no interval for it: with no disagreement to count, this test set says nothing about how much the models could differ on other images.`
        : `Paired test on the ${int(pt.n)} test images: the compressed model gets ${int(pt.onlyBaselineWrong)} right that the baseline gets wrong, and ${int(pt.onlyCompressedWrong)} wrong that the baseline gets right (${int(pt.bothWrong)} both get wrong). The test error change is ${pp(r.errorDeltaPp)}, 95% interval ${ciText(pt.changeCi95Pp)} (exact, given the ${int(pt.onlyBaselineWrong + pt.onlyCompressedWrong)} samples the models disagree on); exact McNemar p ${pValueText(pt.pValue).startsWith('<') ? '' : '= '}${pValueText(pt.pValue)} for "no change". An interval that straddles a target's bound means this test set cannot tell whether the target is met.`,
  });
  blocks.push({ kind: 'h', text: 'Surviving units per layer' });
  const withRule = ruleCut(r);
  if (withRule) blocks.push({ kind: 'p', text: pruneRuleText(r) });
  const after = new Map(c.layers.map((l) => [l.name, l]));
  const groups = new Map(r.groups.map((g) => [g.layer, g]));
  blocks.push({
    kind: 'table',
    head: [
      'layer',
      'units before',
      'units after',
      ...(withRule
        ? ['live groups after proximal training', 'groups left by the prune rule']
        : ['live groups']),
      'non-zero params before',
      'after',
    ],
    rows: b.layers
      .filter((l) => l.params > 0)
      .map((l) => {
        const a = after.get(l.name);
        const g = groups.get(l.name);
        return [
          markdownText(l.name),
          l.units !== undefined ? String(l.units) : '',
          a?.units !== undefined ? String(a.units) : a ? '' : 'removed',
          ...(withRule
            ? [
                g ? `${g.liveAfterProximal ?? g.live}/${g.groups} (${g.granularity})` : '',
                g ? `${g.live}/${g.groups}` : '',
              ]
            : [g ? `${g.live}/${g.groups} (${g.granularity})` : '']),
          int(l.nonzeros),
          a ? int(a.nonzeros) : '0',
        ];
      }),
  });
  blocks.push({ kind: 'h', text: 'Plots' });
  blocks.push(...plots(dir, r, metrics));
  blocks.push({
    kind: 'p',
    text: `Training time: baseline ${seconds(r.timings.baselineSec)}, proximal ${seconds(r.timings.proximalSec)}, fine-tuning ${seconds(r.timings.finetuneSec)}, in all ${seconds(r.timings.totalSec)}. Exported model: \`model/\` (${int(r.exported.bytes)} bytes), loadable with \`tf.loadLayersModel\` without normprune; it expects ${inputText(r)} and outputs logits.`,
  });
  return blocks;
}

/** Writes report.md, report.html and plots/ of a finished run. */
export function writeReport(dir: string, r: RunResults, metrics: MetricLine[]): void {
  const blocks = runReportBlocks(dir, r, metrics);
  writeFileAtomic(join(dir, 'report.md'), toMarkdown(blocks));
  writeFileAtomic(join(dir, 'report.html'), toHtml(`${r.experiment} report`, blocks, dir));
}

/** Figures of one model in a table row. */
export interface RowModel {
  testErrorPct: number;
  validationErrorPct: number;
  /** Every weight of the baseline; for the compressed model see `nonzeros` and `storedParams`. */
  params?: number;
  nonzeros: number;
  storedParams?: number;
  macs: number;
  latencyBatch1Ms?: number;
  latencyBatch256Ms?: number;
}

/**
 * One row of the results table: the committed results/*.json (the docs'
 * generator reads the same fields: experiment, budget, baseline.testErrorPct,
 * compressed.testErrorPct, errorDeltaPp, baseline.params, compressed.nonzeros,
 * compressionPct, thesis.*).
 */
export interface TableRow {
  experiment: string;
  /** A sweep point's label (`lambda-0.0015`, ...); absent for a plain run. */
  variant?: string;
  /**
   * The row's name in tables (`rowName`) and its target cell (`met (...)` or `**missed**: ...`),
   * as rendered when the row was written, for readers without normprune (the docs' table).
   */
  name?: string;
  targetText?: string;
  /** The run's config and budget, seed aside (results.json `configId`); the across-seeds table groups by it. */
  configId?: string;
  budget: string;
  /**
   * For a budget typed in (k=v or JSON, named `...custom`), the settings the name stands for
   * (results.json `budget.spec` without its note): two such budgets on one preset share a name
   * (`tiny+custom`) but not this. A preset's name fixes its settings: its rows have none.
   */
  budgetSpec?: Record<string, unknown>;
  reduced: boolean;
  command?: string;
  seed: number;
  backend: string;
  baseline: RowModel;
  compressed: RowModel;
  compressionPct: number;
  macsReductionPct: number;
  errorDeltaPp: number;
  thesis?: { compressionPct?: number; errorDeltaPp?: number };
  target?: { minCompressionPct: number; maxErrorDeltaPp: number; met: boolean };
  trainingSec: number;
  dataNote?: string;
  /** The paired test on the test set (rows of runs that kept their baseline model to the end). */
  pairedTest?: {
    /** Test images. */
    n: number;
    onlyBaselineWrong: number;
    onlyCompressedWrong: number;
    pValue: number;
    changeCi95Pp: [number, number];
  };
}

const r2 = (v: number) => Number(v.toFixed(2));
const r3 = (v: number | undefined) => (v === undefined ? undefined : Number(v.toFixed(3)));

/**
 * A budget's settings: its spec without the free-text note (which a preset's may reword between
 * versions). What a typed-in budget's row records, and what budgets are compared by.
 */
export function budgetSettings(spec: unknown): unknown {
  if (spec === null || typeof spec !== 'object') return spec;
  const { note: _note, ...settings } = spec as Record<string, unknown>;
  return settings;
}

/** The table row of a run's results; `variant` names a sweep point. */
export function tableRow(r: RunResults, variant?: string): TableRow {
  const row: TableRow = {
    experiment: r.experiment,
    ...(variant === undefined ? {} : { variant }),
    budget: r.budget.name,
    // Only a budget typed in has settings its name does not fix (`tiny+custom`); its note aside.
    ...(typedBudget(r.budget.name)
      ? { budgetSpec: budgetSettings(r.budget.spec) as Record<string, unknown> }
      : {}),
    reduced: isReduced(r.budget.spec),
    command: r.command,
    seed: r.seed,
    backend: r.backend.name,
    baseline: {
      testErrorPct: r2(100 * r.baseline.testError),
      validationErrorPct: r2(100 * r.baseline.validationError),
      params: r.baseline.params,
      nonzeros: r.baseline.nonzeros,
      macs: r.baseline.macs,
      latencyBatch1Ms: r3(r.baseline.latencyMs?.batch1),
      latencyBatch256Ms: r3(r.baseline.latencyMs?.batch256),
    },
    compressed: {
      testErrorPct: r2(100 * r.compressed.testError),
      validationErrorPct: r2(100 * r.compressed.validationError),
      nonzeros: r.compressed.nonzeros,
      storedParams: r.compressed.params,
      macs: r.compressed.macs,
      latencyBatch1Ms: r3(r.compressed.latencyMs?.batch1),
      latencyBatch256Ms: r3(r.compressed.latencyMs?.batch256),
    },
    compressionPct: r2(r.compressionPct),
    macsReductionPct: r2(r.macsReductionPct),
    errorDeltaPp: r2(r.errorDeltaPp),
    thesis: r.thesis
      ? { compressionPct: r.thesis.compressionPct, errorDeltaPp: r.thesis.errorDeltaPp }
      : undefined,
    target: r.target
      ? {
          minCompressionPct: r.target.minCompressionPct,
          maxErrorDeltaPp: r.target.maxErrorDeltaPp,
          met: r.target.met,
        }
      : undefined,
    trainingSec: r.timings.totalSec,
    dataNote: r.dataset.note,
    pairedTest: r.pairedTest
      ? {
          n: r.pairedTest.n,
          onlyBaselineWrong: r.pairedTest.onlyBaselineWrong,
          onlyCompressedWrong: r.pairedTest.onlyCompressedWrong,
          pValue: Number(r.pairedTest.pValue.toPrecision(3)),
          // Unrounded: the tables round it once, to two decimals (-0.0454 is -0.05, not -0.045's -0.04).
          changeCi95Pp: r.pairedTest.changeCi95Pp,
        }
      : undefined,
  };
  if (r.configId) row.configId = r.configId;
  row.name = rowName(row);
  if (row.target) row.targetText = targetCell(row, r.compressionPct, r.errorDeltaPp);
  return row;
}

/** What the report says about the machine's load while the latencies were measured. */
function latencyLoadText(load: CpuLoad | undefined): string {
  if (!load || !(load.loadAverage > 0)) return '';
  const at = `The ${loadText(load)} when they were measured`;
  return oversubscribed(load)
    ? ` ${at}: other processes competed for the CPU, which inflates the medians, the longer call's most, so the speedups may read too large. Time the models on an idle machine (\`normprune eval\`, or \`npm run bench\` in packages/surgery) to compare them.`
    : ` ${at}.`;
}

/** The experiment cell of a row: the experiment, and the sweep point if any. */
export function rowName(r: TableRow): string {
  return r.variant ? `${r.experiment} ${r.variant}` : r.experiment;
}

/**
 * The rows' names, each with `(config <configId>)` where rows of one name and budget come from
 * different configs (an `extends` file that keeps its base's name), so that neither reads as the
 * other. Rows of older versions carry no configId and keep their plain name.
 */
function rowLabels(rows: TableRow[]): string[] {
  const key = (r: TableRow) => `${rowName(r)}\u0000${r.budget}`;
  const ids = new Map<string, Set<string>>();
  for (const r of rows) if (r.configId) ids.set(key(r), (ids.get(key(r)) ?? new Set()).add(r.configId));
  return rows.map((r) =>
    r.configId && (ids.get(key(r))?.size ?? 0) > 1 ? `${rowName(r)} (config ${r.configId})` : rowName(r),
  );
}

/** The file name (without `.json`) of a row written by `report --json/--export`. */
export function rowFileName(r: TableRow): string {
  return r.variant ? `${r.experiment}-${r.variant}` : r.experiment;
}

/**
 * `v` with as many decimals (2 to 4) as it takes to differ from `bound` printed
 * alike, so that a miss by less than 0.005 does not read as the bound itself.
 */
function past(v: number, bound: number, unit: string): string {
  let d = 2;
  while (d < 4 && v.toFixed(d) === bound.toFixed(d)) d++;
  return `${unit === ' pp' && v >= 0 ? '+' : ''}${v.toFixed(d)}${unit}`;
}

type Target = { minCompressionPct: number; maxErrorDeltaPp: number };

/**
 * Which of a target's two bounds `removed` % and an error change of `delta` pp fall short of.
 * Both bounds include their value, up to the rounding of the doubles the figures are computed
 * in: 146 non-zero of 1,000 parameters is 100 * (1 - 146 / 1000) = 85.39999999999999%, and
 * 1.18% - 1.09% is 0.09000000000000001 pp, and each meets its bound exactly.
 */
function shortOf(t: Target, removed: number, delta: number): { removed: boolean; error: boolean } {
  // Written so that a figure that is not a number falls short, as the pipeline judged it before.
  return { removed: !(removed >= t.minCompressionPct - 1e-9), error: !(delta <= t.maxErrorDeltaPp + 1e-9) };
}

/** Whether `removed` % and an error change of `delta` pp meet the target (a run's `target.met`). */
export function targetMet(t: Target, removed: number, delta: number): boolean {
  const short = shortOf(t, removed, delta);
  return !short.removed && !short.error;
}

/** The target cell: met or missed, and by what, for `removed` % and an error change of `delta` pp. */
function targetText(t: Target, removed: number, delta: number, qualifier: string): string {
  const want = `>= ${t.minCompressionPct}% removed, error <= ${pp(t.maxErrorDeltaPp)}`;
  const short = shortOf(t, removed, delta);
  const why: string[] = [];
  if (short.removed) why.push(`${past(removed, t.minCompressionPct, '%')} removed < ${t.minCompressionPct}%`);
  if (short.error) why.push(`error ${past(delta, t.maxErrorDeltaPp, ' pp')} > ${pp(t.maxErrorDeltaPp)}`);
  return why.length ? `**missed**${qualifier}: ${why.join('; ')} (${want})` : `met${qualifier} (${want})`;
}

/**
 * The target cell of a row. `removed` and `delta` default to the row's figures,
 * which are rounded to two decimals; a run's own cell is decided on its
 * unrounded ones (results.json's), as the run's verdict is: 85.396% removed
 * misses 85.4% though it prints as 85.40%.
 */
function targetCell(r: TableRow, removed = r.compressionPct, delta = r.errorDeltaPp): string {
  // A target is defined for the full experiment: at a reduced budget it is only indicative.
  const only = r.reduced ? ' at a reduced budget only, not a reproduction' : '';
  return targetText(r.target!, removed, delta, only);
}

/**
 * A 95% interval of the mean test error change (pp) of runs that share one test set, from their
 * paired tests; undefined unless every run has one. Normal approximation around the mean of the
 * runs' changes, with half-width 1.96 x the mean of their standard errors: the standard error of a
 * mean is at most the mean of the standard errors, whatever the correlation between the runs'
 * errors on the shared images, so the interval is conservative for that.
 *
 * It is an interval for these trained models, over the images the test set samples: it leaves
 * out how the change varies from one training seed to the next (the table's sd shows that), and
 * it does not narrow with more seeds. An interval over seeds, such as a t-interval of the seeds'
 * changes with k - 1 degrees of freedom, would in turn leave out the test images' sampling, which
 * the seeds share.
 */
export function meanChangeCi95(rows: TableRow[]): [number, number] | undefined {
  const tests = rows.map((r) => r.pairedTest);
  if (!tests.length || tests.some((t) => t?.n === undefined)) return undefined;
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const change = mean(tests.map((t) => changePp(t!)));
  const se = mean(tests.map((t) => changeSePp(t!)));
  return [change - 1.96 * se, change + 1.96 * se];
}

/**
 * P(|T| <= t) for Student's t with `df` degrees of freedom (a positive integer), in closed form
 * (Abramowitz and Stegun 26.7.3 and 26.7.4, with theta = atan(t / sqrt(df))).
 */
export function studentTCentral(t: number, df: number): number {
  const theta = Math.atan(t / Math.sqrt(df));
  const c2 = Math.cos(theta) ** 2;
  if (df % 2 === 0) {
    let term = 1;
    let sum = 1;
    for (let k = 2; k <= df - 2; k += 2) {
      term *= ((k - 1) / k) * c2;
      sum += term;
    }
    return Math.sin(theta) * sum;
  }
  let term = Math.cos(theta);
  let sum = df === 1 ? 0 : term;
  for (let k = 3; k <= df - 2; k += 2) {
    term *= ((k - 1) / k) * c2;
    sum += term;
  }
  return (2 / Math.PI) * (theta + Math.sin(theta) * sum);
}

/** The t with P(|T| <= t) = `level` for Student's t with `df` degrees of freedom, by bisection. */
export function studentTQuantile(level: number, df: number): number {
  let hi = 1;
  while (studentTCentral(hi, df) < level) hi *= 2;
  return bisect((t) => studentTCentral(t, df) < level, 0, hi, 200, 1e-12);
}

/**
 * A 95% interval of the mean test error change (pp) over training seeds: the t-interval of the
 * seeds' changes, mean +- t(0.975, k - 1) x sd / sqrt(k); undefined for fewer than 2 seeds. It
 * allows for the spread between seeds, which `meanChangeCi95` leaves out, and not for the
 * sampling of the test images, which the seeds share and `meanChangeCi95` covers.
 */
export function seedsChangeCi95(changes: number[]): [number, number] | undefined {
  if (changes.length < 2) return undefined;
  const { mean, sd } = meanSd(changes);
  const half = (studentTQuantile(0.95, changes.length - 1) * sd) / Math.sqrt(changes.length);
  return [mean - half, mean + half];
}

// A row's percentages are rounded to 2 decimals; their means can be 0.01 off (87.29% for the
// seeds' 87.2849%) or fall on the other side of a bound (82.196% twice averages 82.20%). The
// seeds table averages each row's own figures, from its counts where it has them.
function exactCompressionPct(r: TableRow): number {
  const params = r.baseline.params;
  return params ? 100 * (1 - r.compressed.nonzeros / params) : r.compressionPct;
}

function exactErrorDeltaPp(r: TableRow): number {
  return r.pairedTest?.n !== undefined ? changePp(r.pairedTest) : r.errorDeltaPp;
}

function meanSd(v: number[]): { mean: number; sd: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, sd };
}

/**
 * One row per experiment (and sweep point) and budget that was run with two
 * or more seeds: the mean (and sample standard deviation) of the compression
 * and of the test-error change, and the mean validation-error change (what
 * choices are made on), with the target judged on the means. A single run's
 * test-error change moves by about 0.1 pp between seeds on MNIST's 10,000
 * test images, as much as the thesis's +0.09 pp bound.
 */
export function seedsTable(rows: TableRow[]): string | undefined {
  const byName = new Map<string, TableRow[]>();
  for (const r of rows) {
    const key = `${r.experiment}\u0000${r.variant ?? ''}\u0000${r.budget}`;
    byName.set(key, [...(byName.get(key) ?? []), r]);
  }
  // Rows of one name but different configs (an `extends` file that keeps its base's name) are
  // different experiments, not seeds of one: they are split by configId. Rows of older versions
  // carry none and go with the others while their configIds agree.
  const groups = new Map<string, TableRow[]>();
  for (const [key, named] of byName) {
    const ids = new Set(named.flatMap((r) => (r.configId ? [r.configId] : [])));
    for (const r of named) {
      const k = ids.size > 1 ? `${key}\u0000${r.configId ?? ''}` : key;
      const g = groups.get(k) ?? [];
      if (!g.some((x) => x.seed === r.seed)) g.push(r);
      groups.set(k, g);
    }
  }
  const body: string[][] = [];
  const shown = [...groups.values()].filter((g) => g.length >= 2);
  const labels = rowLabels(shown.map((g) => g[0]));
  for (const [i, g] of shown.entries()) {
    g.sort((a, b) => a.seed - b.seed);
    const removed = meanSd(g.map(exactCompressionPct));
    const delta = meanSd(g.map(exactErrorDeltaPp));
    const base = meanSd(g.map((r) => r.baseline.testErrorPct));
    const comp = meanSd(g.map((r) => r.compressed.testErrorPct));
    const valDelta = meanSd(g.map((r) => r.compressed.validationErrorPct - r.baseline.validationErrorPct));
    const t = g[0].target;
    // As each row's cell says: a target is defined for the full experiment.
    const only = g.some((r) => r.reduced) ? ' at a reduced budget only, not a reproduction' : '';
    const target = t ? targetText(t, removed.mean, delta.mean, ` on the means${only}`) : '';
    body.push([
      markdownText(labels[i]),
      markdownText(budgetText(g[0])),
      g.map((r) => r.seed).join(', '),
      `${pct(removed.mean)} ± ${removed.sd.toFixed(2)}`,
      `${pct(base.mean)} -> ${pct(comp.mean)}`,
      pp(Number(valDelta.mean.toFixed(2))),
      g.map((r) => pp(r.errorDeltaPp).replace(' pp', '')).join(', '),
      `${pp(delta.mean)} ± ${delta.sd.toFixed(2)}`,
      ((ci) => (ci ? ciText(ci) : ''))(meanChangeCi95(g)),
      ((ci) => `[${pp(ci[0]).replace(' pp', '')}, ${pp(ci[1])}]`)(seedsChangeCi95(g.map(exactErrorDeltaPp))!),
      target,
    ]);
  }
  if (!body.length) return undefined;
  return markdownTable(
    [
      'experiment',
      'budget',
      'seeds',
      'removed (mean ± sd)',
      'test error base -> compressed (means)',
      'validation change (mean)',
      'change per seed (pp)',
      'change (mean ± sd)',
      'change 95% CI (mean)',
      'change 95% CI over seeds (t)',
      'target',
    ],
    body,
  );
}

/** The Markdown results table over several runs (one row per run). */
export function resultsTable(rows: TableRow[]): string {
  const head = [
    'experiment',
    'seed',
    'budget',
    'params before',
    'non-zero after',
    'removed',
    'thesis removed',
    'validation error base -> compressed',
    'test error base -> compressed',
    'change',
    'change 95% CI',
    'thesis change',
    'MACs removed',
    'target',
    'train time',
  ];
  const labels = rowLabels(rows);
  const body = rows.map((r, i) => [
    markdownText(labels[i]),
    String(r.seed),
    markdownText(budgetText(r)),
    int(r.baseline.params),
    int(r.compressed.nonzeros),
    pct(r.compressionPct),
    r.thesis?.compressionPct !== undefined ? pct(r.thesis.compressionPct) : '',
    `${pct(r.baseline.validationErrorPct)} -> ${pct(r.compressed.validationErrorPct)}`,
    `${pct(r.baseline.testErrorPct)} -> ${pct(r.compressed.testErrorPct)}`,
    pp(r.errorDeltaPp),
    r.pairedTest ? ciText(r.pairedTest.changeCi95Pp) : '',
    r.thesis?.errorDeltaPp !== undefined ? pp(r.thesis.errorDeltaPp) : '',
    pct(r.macsReductionPct),
    r.target ? (r.targetText ?? targetCell(r)) : '',
    seconds(r.trainingSec),
  ]);
  return toMarkdown([{ kind: 'table', head, rows: body }]);
}

/** One point of a sweep. */
export interface SweepPoint {
  label: string;
  dir: string;
  lambda: number;
  granularity?: string;
  costWeighting?: string;
  compressionPct: number;
  validationErrorPct: number;
  testErrorPct: number;
  baselineValidationErrorPct: number;
  baselineTestErrorPct: number;
  /** The point's paired test against the shared baseline (absent in sweeps before it existed). */
  changeCi95Pp?: [number, number];
}

/**
 * A sweep.json as reports show it: a cost weighting recorded as `'flops'` (by sweeps before it
 * was renamed `'macs'`; the same weighting) reads as `'macs'`, in its points and its note. The
 * file itself is a record and is not rewritten; point labels are folder names and stay as they are.
 */
function currentSweepNames<T extends { note: string; points: SweepPoint[] }>(sweep: T): T {
  return {
    ...sweep,
    note: sweep.note.replace(/cost weighting \[[^\]]*\]/g, (list) =>
      list.replace(/"([^"]*)"/g, (quoted, c: string) =>
        isFormerCostWeighting(c) ? JSON.stringify(currentCostWeighting(c)) : quoted,
      ),
    ),
    points: sweep.points.map((p) =>
      isFormerCostWeighting(p.costWeighting)
        ? { ...p, costWeighting: currentCostWeighting(p.costWeighting) }
        : p,
    ),
  };
}

/**
 * Writes a sweep's report.md, report.html and Pareto plot; `answer` is the label of a
 * bisection's answer, whose row is marked.
 */
export function writeSweepReport(
  dir: string,
  name: string,
  points: SweepPoint[],
  note: string,
  answer?: string,
  budget?: RunResults['budget'],
): void {
  ({ points, note } = currentSweepNames({ points, note }));
  const front = paretoFront(points.map((p) => [p.compressionPct, p.validationErrorPct]));
  writeFileAtomic(
    join(dir, 'plots', 'pareto.svg'),
    lineChart({
      title: 'Validation error vs compression',
      xLabel: 'parameters removed (%)',
      yLabel: 'validation error (%)',
      scatter: true,
      series: [
        { name: 'runs', points: points.map((p) => [p.compressionPct, p.validationErrorPct]) },
        { name: 'Pareto front', points: front, color: '#d62728', line: true },
      ],
    }),
  );
  const reduced = reducedBudgetText(budget, "the sweep's");
  // Granularity and cost weighting are columns only when the grid varies them (a point records
  // them only then); the config's own are its runs' (their reports give them).
  const varied = {
    granularity: points.some((p) => p.granularity !== undefined),
    cost: points.some((p) => p.costWeighting !== undefined),
  };
  const keep = (_: unknown, i: number) => (i !== 2 || varied.granularity) && (i !== 3 || varied.cost);
  const blocks: Block[] = [
    { kind: 'h', level: 1, text: `${markdownText(name)}: sweep` },
    { kind: 'p', text: markdownText(note) },
    ...(reduced ? [{ kind: 'p' as const, text: reduced }] : []),
    {
      kind: 'p',
      text: `Every point starts from one baseline: validation error ${pct(points[0]?.baselineValidationErrorPct)}, test error ${pct(points[0]?.baselineTestErrorPct)}. The changes are against it, in percentage points.`,
    },
    {
      kind: 'table',
      head: [
        'run',
        'lambda',
        'granularity',
        'cost weighting',
        'removed',
        'validation error',
        'validation change',
        'test error',
        'test change',
        'test change 95% CI',
      ].filter(keep),
      rows: points.map((p) =>
        [
          markdownText(p.label) + (p.label === answer ? ' (the answer)' : ''),
          String(p.lambda),
          markdownText(p.granularity ?? ''),
          markdownText(p.costWeighting ?? ''),
          pct(p.compressionPct),
          pct(p.validationErrorPct),
          pp(Number((p.validationErrorPct - p.baselineValidationErrorPct).toFixed(2))),
          pct(p.testErrorPct),
          pp(Number((p.testErrorPct - p.baselineTestErrorPct).toFixed(2))),
          p.changeCi95Pp ? ciText(p.changeCi95Pp) : '',
        ].filter(keep),
      ),
    },
    {
      kind: 'img',
      file: 'plots/pareto.svg',
      alt: 'validation error against parameters removed; the red points are the Pareto front',
    },
  ];
  writeFileAtomic(join(dir, 'report.md'), toMarkdown(blocks));
  writeFileAtomic(join(dir, 'report.html'), toHtml(`${name} sweep`, blocks, dir));
}
