// A diverged phase is told by the class of the refusal (NonFiniteWeightError),
// never by its message: decompose and prune are replaced by stand-ins that
// throw the class with unrelated wording, or a plain Error with the old one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as layers from '@normprune/layers';
import * as surgery from '@normprune/surgery';
import { cli, writeVariant } from './helpers';

jest.mock('@normprune/layers', () => {
  const actual = jest.requireActual('@normprune/layers');
  return { __esModule: true, ...actual, decompose: jest.fn(actual.decompose) };
});
jest.mock('@normprune/surgery', () => {
  const actual = jest.requireActual('@normprune/surgery');
  return { __esModule: true, ...actual, prune: jest.fn(actual.prune) };
});

const decompose = layers.decompose as jest.MockedFunction<typeof layers.decompose>;
const prune = surgery.prune as jest.MockedFunction<typeof surgery.prune>;

/** A refusal worded as neither decompose nor surgery words it. */
const refusal = (): layers.NonFiniteWeightError =>
  new layers.NonFiniteWeightError(
    {
      layer: 'dense2',
      className: 'Dense',
      weight: 'dense2/kernel',
      count: 3,
      index: [4, 1],
      value: -Infinity,
    },
    'somewhere else',
    'unrelated advice',
  );

let tmp: string;
let config: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-diverged-'));
  config = writeVariant(tmp, 'quick', (cfg) => (cfg.training.batchSize = 256));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  decompose.mockReset();
  prune.mockReset();
  const actualLayers = jest.requireActual('@normprune/layers');
  const actualSurgery = jest.requireActual('@normprune/surgery');
  decompose.mockImplementation(actualLayers.decompose);
  prune.mockImplementation(actualSurgery.prune);
});

const train = (name: string) =>
  cli(['train', '--config', config, '--budget', 'tiny', '--out', join(tmp, name), '--backend', 'cpu']);

test("decompose's NonFiniteWeightError, whatever its message, is the baseline's divergence", async () => {
  decompose.mockImplementation(() => {
    throw refusal();
  });
  const r = await train('baseline-class');
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /baseline: the trained baseline cannot be decomposed \(layer 'dense2' \(Dense\) has 3 non-finite values in weight 'dense2\/kernel' \(the first, at \[4,1\], is -Infinity\)\): the baseline training diverged: lower training\.baseline\.learningRate/,
  );
  expect(r.err).not.toMatch(/somewhere else|unrelated advice/);
});

test("a plain Error worded as decompose's refusal is not taken for one", async () => {
  const message =
    "decompose: layer 'dense1' (Dense) has 1 non-finite value in weight 'dense1/kernel' (the first, at [0,0], is NaN): " +
    'no magnitude can be computed from it';
  decompose.mockImplementation(() => {
    throw new Error(message);
  });
  const r = await train('baseline-plain');
  expect(r.code).toBe(1);
  expect(r.err).toContain(message);
  expect(r.err).not.toMatch(/baseline training diverged/);
});

test("prune's NonFiniteWeightError, whatever its message, is the proximal phase's divergence", async () => {
  prune.mockImplementation(() => {
    throw refusal();
  });
  const r = await train('proximal-class');
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /proximal: weight dense2\/kernel of the trained model holds NaN or an infinity: the proximal training diverged .*lower training\.proximal\.learningRate/,
  );
  expect(r.err).not.toMatch(/somewhere else|finetune/);
});
