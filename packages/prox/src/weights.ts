import { describeValue as describe, type MagnitudeInfo } from '@normprune/layers';
import { checkOptionKeys, finiteNonnegative } from './checks.js';

/**
 * How the L1 penalty weighs each group's magnitude (`c_k` in
 * `lambda * sum_k c_k * |g_k|`):
 * - `'uniform'`: `c_k = 1` (the thesis);
 * - `'params'`: proportional to the kernel parameters the group controls;
 * - `'macs'`: proportional to the multiply-accumulates (MACs) per sample the group
 *   controls (`macsPerGroup` of `magnitudes()`). Attaching a model whose MACs are
 *   unknown (a layer without known spatial sizes) throws.
 *
 * `'params'` and `'macs'` are normalised so the mean `c_k` over all groups
 * is 1, so one `lambda` has a comparable strength under every weighting.
 *
 * Deprecated: where a cost weighting is given (`ProximalSGD`, `ProximalAdam`,
 * `l1Penalty`), `'flops'`, the former name of `'macs'` (it always counted
 * multiply-accumulates), is still accepted and weighs exactly as `'macs'`; its
 * first use in a process warns (`console.warn`). Write `'macs'`.
 */
export type CostWeighting = 'uniform' | 'params' | 'macs';

/** The fields of `MagnitudeInfo` the penalty weights depend on. */
export type CostInfo = Pick<MagnitudeInfo, 'layerName' | 'groups' | 'paramsPerGroup' | 'macsPerGroup'>;

/**
 * One penalty weight per entry of `infos` (every group of one layer controls
 * the same number of parameters and MACs, so `c_k` is constant within a
 * layer), including the per-layer multipliers.
 */
export function costWeights(
  infos: readonly CostInfo[],
  given: CostWeighting | 'flops' = 'uniform',
  layerMultipliers: Record<string, number> = {},
): number[] {
  const costWeighting = resolveCostWeighting(given);
  checkLayerMultipliers(layerMultipliers, new Set(infos.map((m) => m.layerName)));
  let base: number[];
  if (costWeighting === 'uniform') {
    base = infos.map(() => 1);
  } else {
    const key = costWeighting === 'params' ? 'paramsPerGroup' : 'macsPerGroup';
    const raw = infos.map((m) => m[key]);
    raw.forEach((v, i) => {
      if (!(v > 0) || !Number.isFinite(v)) {
        throw new Error(
          `costWeighting '${costWeighting}': layer '${infos[i].layerName}' has ${key} = ${v}` +
            (costWeighting === 'macs'
              ? ' (MACs need a built model with known spatial dimensions): give the model input a fixed ' +
                "height and width (inputShape [28, 28, 1], not [null, null, 1]), or weigh by 'params'"
              : ''),
        );
      }
    });
    const groups = infos.reduce((s, m) => s + m.groups, 0);
    const mean = infos.reduce((s, m, i) => s + m.groups * raw[i], 0) / groups;
    base = raw.map((v) => v / mean);
  }
  return base.map((c, i) => c * (layerMultipliers[infos[i].layerName] ?? 1));
}

/**
 * Checks that every multiplier is a finite number >= 0 and, given the
 * decomposed layers' names, that it names one of them (a misspelt name would
 * silently leave that layer at weight 1). `names` null checks the values only.
 */
export function checkLayerMultipliers(
  layerMultipliers: Record<string, number>,
  names: ReadonlySet<string> | null,
): void {
  for (const [name, v] of Object.entries(layerMultipliers)) {
    if (names !== null && !names.has(name)) {
      throw new Error(
        `layerMultipliers: no decomposed layer named '${name}' (have: ${[...names].join(', ') || 'none'})`,
      );
    }
    finiteNonnegative(`layerMultipliers['${name}']`, v);
  }
}

/** The cost weightings there are. */
export const COST_WEIGHTINGS: readonly CostWeighting[] = ['uniform', 'params', 'macs'];

/**
 * Former names of cost weightings, each with the weighting it names now:
 * `'flops'` is `'macs'` (it always counted multiply-accumulates). Where a cost
 * weighting is given, a former name is still accepted (with a warning); a
 * saved optimiser config holding one loads as the current name.
 */
export const FORMER_COST_WEIGHTINGS: Readonly<Record<string, CostWeighting>> = Object.freeze({
  flops: 'macs',
});

const warnedFormer = new Set<string>();

/** The weighting `given` names if it is a former name ({@link FORMER_COST_WEIGHTINGS}), else undefined. */
export function formerCostWeighting(given: unknown): CostWeighting | undefined {
  return typeof given === 'string' && Object.hasOwn(FORMER_COST_WEIGHTINGS, given)
    ? FORMER_COST_WEIGHTINGS[given]
    : undefined;
}

/**
 * The cost weighting `given` names: itself, `'macs'` for the deprecated alias
 * `'flops'` (warning once per process that it is deprecated), or an error
 * listing the weightings there are.
 */
export function resolveCostWeighting(given: unknown): CostWeighting {
  const current = formerCostWeighting(given);
  if (current) {
    if (!warnedFormer.has(given as string)) {
      warnedFormer.add(given as string);
      console.warn(
        `costWeighting '${given}' is deprecated: it is the former name of '${current}' and weighs ` +
          `exactly as '${current}' does; write costWeighting: '${current}'. Shown once.`,
      );
    }
    return current;
  }
  if (!COST_WEIGHTINGS.includes(given as CostWeighting)) throw new Error(costWeightingError(given));
  return given as CostWeighting;
}

/** The error for a cost weighting that is not one of them. */
function costWeightingError(costWeighting: unknown): string {
  return `unknown costWeighting: ${JSON.stringify(costWeighting) ?? String(costWeighting)}; allowed: ${COST_WEIGHTINGS.map((c) => `'${c}'`).join(', ')}`;
}

/** The `layerMultipliers` option as a record: given as one, or as the list a config saves. */
export function multipliersRecord(v: unknown): Record<string, number> {
  if (v === undefined) return {};
  if (Array.isArray(v)) {
    const entries = new Map<string, number>();
    v.forEach((e: unknown, i) => {
      const at = `layerMultipliers[${i}]`;
      checkOptionKeys(at, e, ['name', 'multiplier'], "{ name: 'fc1', multiplier: 0.5 }", true);
      const { name, multiplier } = e as { name: unknown; multiplier: number };
      if (typeof name !== 'string' || name === '')
        throw new Error(`${at}.name must be a layer name, got ${describe(name)}`);
      if (entries.has(name)) throw new Error(`layerMultipliers: layer '${name}' is listed twice`);
      entries.set(name, multiplier); // the values are checked with the record's (checkLayerMultipliers)
    });
    return Object.fromEntries(entries);
  }
  if (v === null || typeof v !== 'object')
    throw new Error(
      `layerMultipliers must be a record such as { fc1: 0.5 } or a list such as [{ name: 'fc1', multiplier: 0.5 }], got ${describe(v)}`,
    );
  return { ...(v as Record<string, number>) };
}
