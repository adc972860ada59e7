// config.schema.json, the JSON Schema editors read through a config's
// `$schema`: it is what src/config.ts generates, it accepts every shipped
// config, and it rejects what the CLI rejects.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import {
  configJsonSchema,
  configsDir,
  listExperiments,
  loadConfigFile,
  loadExperiment,
  parseConfig,
} from '../src/index';
import { clone, experimentCopy } from './helpers';

const schemaFile = join(__dirname, '..', 'config.schema.json');
const committed = JSON.parse(readFileSync(schemaFile, 'utf8'));
const validate = new Ajv({ allErrors: true }).compile(committed);
const errors = (json: unknown): string[] =>
  validate(json) ? [] : (validate.errors ?? []).map((e) => `${e.dataPath} ${e.message}`);
const raw = (name: string) => JSON.parse(readFileSync(join(configsDir(), `${name}.json`), 'utf8'));

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-schema-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('config.schema.json is the schema src/config.ts generates (else: npm run schema)', () => {
  expect(committed).toEqual(configJsonSchema());
});

test("model.layers' text states the rules validation adds: flatten before dense, logits units per class", () => {
  const layers = JSON.stringify(committed).match(
    /"description":"(dense, conv2d, depthwiseConv2d, maxPool2d and flatten[^"]*)"/,
  )?.[1];
  expect(layers).toBe(
    'dense, conv2d, depthwiseConv2d, maxPool2d and flatten layers, in order; a dense layer comes after a flatten, and the last is ' +
      'a dense layer (the logits) with one unit per class of dataset.name ' +
      '(10 for mnist, 10 for fashion-mnist, 10 for cifar10).',
  );
});

test('every shipped config, as written, is valid under the schema and names it in $schema', () => {
  for (const name of listExperiments()) {
    const json = raw(name);
    expect({ name, errors: errors(json) }).toEqual({ name, errors: [] });
    expect(json.$schema).toBe('../config.schema.json');
  }
});

test('with extends any field may be left out; without it the required ones must be there', () => {
  const partial = { extends: 'lenet-5-fc', training: { proximal: { lambda: 0.003 } } };
  expect(errors(partial)).toEqual([]);
  const { extends: _e, ...alone } = partial;
  const missing = errors(alone).join('\n');
  for (const field of ['name', 'dataset', 'model', 'training']) expect(missing).toMatch(field);
  // A description is optional: a config written by hand need not describe itself.
  const { description: _d, ...undescribed } = experimentCopy('lenet-500-300');
  expect(errors(undescribed)).toEqual([]);
  // Inner required fields too: a whole config missing a phase's learning rate.
  const whole = experimentCopy('lenet-500-300');
  delete whole.training.baseline.learningRate;
  expect(errors(whole).join('\n')).toMatch(/\.training\.baseline .*learningRate/);
  expect(errors({ ...whole, extends: 'lenet-500-300' })).toEqual([]);
  expect(errors({ extends: '' }).join('\n')).toMatch(/\.extends/);
  // null unsets an optional field; a required one cannot be null.
  const unset = {
    extends: 'lenet-5-fc',
    target: null,
    thesis: { compressionPct: null },
    training: { finetune: { distill: null } },
  };
  expect(errors(unset)).toEqual([]);
  expect(() => parseConfig(unset)).not.toThrow();
  expect(errors({ extends: 'lenet-5-fc', training: { batchSize: null } }).join('\n')).toMatch(/batchSize/);
  // Inside a nullable field, what merges into the base's object may be partial too.
  const partialDistill = { training: { finetune: { distill: { temperature: 2 } } } };
  expect(errors({ extends: 'lenet-5-fc', ...partialDistill })).toEqual([]);
  const full = experimentCopy('lenet-5-fc');
  full.training.finetune.distill = { temperature: 2 };
  expect(errors(full).join('\n')).toMatch(/weight/);
});

test('the schema rejects what the CLI rejects: unknown fields, bad values, bad layers', () => {
  const base = experimentCopy('lenet-5');
  const bad: Array<[string, (c: any) => void]> = [
    ['unknown field', (c) => (c.extra = 1)],
    ['bad data set', (c) => (c.dataset.name = 'mnist3')],
    ['bad granularity', (c) => (c.decompose.dense = 'rows')],
    ['negative lambda', (c) => (c.training.proximal.lambda = -1)],
    ['bad layer type', (c) => (c.model.layers[0].type = 'conv3d')],
    ['bad name', (c) => (c.name = 'LeNet 5')],
    ['bad schedule', (c) => (c.training.proximal.schedule = { type: 'cosine' })],
    ['unknown optimiser', (c) => (c.training.finetune.optimizer = 'rmsprop')],
    ['distill weight above 1', (c) => (c.training.finetune.distill = { weight: 2 })],
  ];
  expect(errors(base)).toEqual([]);
  expect(() => parseConfig(base)).not.toThrow();
  for (const [what, edit] of bad) {
    const cfg = clone(base);
    edit(cfg);
    expect({ what, schema: errors(cfg).length > 0 }).toEqual({ what, schema: true });
    expect(() => parseConfig(cfg)).toThrow(/invalid config/);
  }
});

test('$schema is for editors: a run config never holds it, and it changes nothing', () => {
  const cfg = loadExperiment('lenet-5-fc');
  expect('$schema' in cfg).toBe(false);
  const file = join(tmp, 'plain.json');
  const { $schema: _s, ...json } = raw('lenet-5-fc');
  writeFileSync(file, JSON.stringify(json));
  expect(loadConfigFile(file)).toEqual(cfg);
});
