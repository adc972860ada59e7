// Entry point of the `normprune` bin (bin/normprune.js requires the built copy).
import { main } from './cli.js';

// `normprune list | head` closes stdout early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`normprune: error: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
