// Cost weightings by name: the current names, and former names still read (`'flops'`, now
// `'macs'`), in one place for the config schema, the CLI flag, hashes, sweep folders and reports.
import {
  COST_WEIGHTINGS,
  type CostWeighting,
  FORMER_COST_WEIGHTINGS,
  formerCostWeighting,
} from '@normprune/prox';

/** Every name a config, a flag or a record may give: the weightings, then their former names. */
export const COST_WEIGHTING_NAMES = [...COST_WEIGHTINGS, ...Object.keys(FORMER_COST_WEIGHTINGS)] as [
  string,
  ...string[],
];

/** Whether `c` is a former name of a cost weighting (`'flops'`). */
export const isFormerCostWeighting = (c: unknown): c is string => formerCostWeighting(c) !== undefined;

/** `c` by its current name: a former name read as the weighting it names, any other name as is. */
export function currentCostWeighting(c: string): CostWeighting {
  return formerCostWeighting(c) ?? (c as CostWeighting);
}

/**
 * `c` by its first name, as hashes spell it (`'macs'` as `'flops'`, its name when hashes were
 * first recorded: checkpoints, config.json, results.json's configId, sweep.json's key) and as
 * sweep point folders were first named. A config saying `'macs'` and a run recorded with
 * `'flops'` (the same weighting) so hash alike: the run is resumed, reused by a sweep, and
 * counted as a seed of the same experiment.
 */
export function firstCostWeightingName(c: string): string {
  return Object.keys(FORMER_COST_WEIGHTINGS).find((f) => FORMER_COST_WEIGHTINGS[f] === c) ?? c;
}

/**
 * The note for a former name given where `subject` says (`--cost-weighting`,
 * `old.json: training.proximal.costWeighting`), its names JSON-quoted when `quoted`.
 */
export function formerCostWeightingNote(subject: string, former: string, quoted: boolean): string {
  const q = (s: string) => (quoted ? JSON.stringify(s) : s);
  const current = currentCostWeighting(former);
  return (
    `note: ${subject} ${q(former)} is deprecated, read as ${q(current)} (its new name: the same ` +
    `weighting); write ${q(current)}\n`
  );
}
