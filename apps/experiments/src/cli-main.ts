// Entry point of the `normprune` bin (bin/normprune.js requires the built copy).
import { main } from './cli.js';

// A reader that goes away (`normprune list | head`, `normprune reproduce X 2>&1 | head`) ends
// the output, not the command: a run goes on to write its folder and release its lock. So does a
// terminal that is closed (EIO): the SIGHUP that follows is handled, not preempted by the write's
// error.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || e.code === 'EIO' || e.code === 'ERR_STREAM_DESTROYED') return;
    throw e;
  });

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`normprune: error: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
