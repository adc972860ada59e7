// Configs the run cannot train are refused at validation (exit 2), naming the field,
// before any data is loaded or any phase trains.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/index';
import { cli, experimentCopy, writeVariant } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'np-config-checks-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("the last layer's units are the data set's class count", () => {
  test('parseConfig refuses logits of another width, naming the field and the count', () => {
    const cfg = experimentCopy('lenet-5');
    const last = cfg.model.layers.length - 1;
    cfg.model.layers[last].units = 5;
    expect(() => parseConfig(cfg, 'x.json')).toThrow(
      `invalid x.json:\n  model.layers[${last}].units: the last layer (the logits) must have 10 units, one per class of mnist (dataset.name), got 5`,
    );
    // cifar10 too (vgg-16).
    const vgg = experimentCopy('vgg-16');
    vgg.model.layers[vgg.model.layers.length - 1].units = 100;
    expect(() => parseConfig(vgg)).toThrow(
      /units: the last layer \(the logits\) must have 10 units, one per class of cifar10/,
    );
  });

  test('train --print-config exits 2 with that message', async () => {
    const file = writeVariant(tmp, 'units5', (cfg) => {
      cfg.model.layers = [{ type: 'flatten' }, { type: 'dense', units: 5, name: 'logits' }];
    });
    const r = await cli(['train', '--config', file, '--print-config']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /model\.layers\[1\]\.units: the last layer \(the logits\) must have 10 units, one per class of mnist/,
    );
  });
});
