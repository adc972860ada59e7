// Writes config.schema.json, the JSON Schema of experiment config files that
// editors read through a config's `$schema` field: `npm run schema` after
// changing the zod schema in src/config.ts (test/schema.test.ts fails until then).
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as prettier from 'prettier';
import { configJsonSchema } from '../src/config';

async function main(): Promise<void> {
  const file = join(__dirname, '..', 'config.schema.json');
  const options = (await prettier.resolveConfig(file)) ?? {};
  const text = await prettier.format(JSON.stringify(configJsonSchema()), { ...options, parser: 'json' });
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
  console.log(`wrote ${file}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
