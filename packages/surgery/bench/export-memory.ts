// Peak memory of exportModel beyond the model itself, for the CIFAR VGG-16
// (BN) at full width (15.0M parameters, 60 MB of float32 weights), on the cpu
// and wasm backends, as a multiple of the weight bytes. Not a test: the
// figures depend on when V8 collects garbage.
//
//   cd packages/surgery && node --expose-gc --require ../../scripts/ts-register.cjs bench/export-memory.ts
//
// Memory is `process.memoryUsage().arrayBuffers` (ArrayBuffers and Buffers
// outside the V8 heap; the weights of the cpu backend, not the wasm heap),
// sampled every millisecond and before every file write, minus its value after
// a full GC with the model built. Each case runs `--repeat` times (default 3);
// the table gives the largest peak.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend } from '@normprune/runtime';
import { exportModel } from '../src/index.js';
import { option, peakExtraArrayBuffers as peakExtra, vgg16bn } from '../../../tools/testing/bench.js';

const REPEAT = option('--repeat', 3);

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-export-mem-'));
  const rows: [string, string, number, number][] = [];
  for (const backend of ['cpu', 'wasm'] as const) {
    await initBackend({ prefer: backend, quiet: true });
    const model = vgg16bn();
    const bytes = 4 * model.countParams();
    const cases: [string, { format: 'tfjs' | 'sparse'; float16?: boolean }][] = [
      ['tfjs', { format: 'tfjs' }],
      ['tfjs, float16', { format: 'tfjs', float16: true }],
      ['sparse', { format: 'sparse' }],
    ];
    for (const [name, options] of cases) {
      let worst = 0;
      for (let r = 0; r < REPEAT; r++) {
        const dir = path.join(root, `${backend}-${name}-${r}`);
        worst = Math.max(worst, await peakExtra(() => exportModel(model, dir, options)));
        fs.rmSync(dir, { recursive: true, force: true });
      }
      rows.push([backend, name, worst, bytes]);
    }
    model.dispose();
  }
  fs.rmSync(root, { recursive: true, force: true });

  console.log(
    `VGG-16 (BN), CIFAR, full width: ${(rows[0][3] / 2 ** 20).toFixed(1)} MB of weights; node ${process.version}`,
  );
  console.log('| backend | format | peak extra MB | x weight bytes |');
  console.log('| --- | --- | ---: | ---: |');
  for (const [backend, name, extra, bytes] of rows) {
    console.log(`| ${backend} | ${name} | ${(extra / 2 ** 20).toFixed(1)} | ${(extra / bytes).toFixed(2)} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
