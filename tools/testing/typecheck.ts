// Type-checks a TypeScript project the way a user's `tsc -p` does, with the
// workspace's compiler, and reports only the diagnostics that are ours to fix.
//
// Usage (inside a project made by `packAndInstall`, after writing a
// tsconfig.json and the consumer files there):
//
//   const { diagnostics, files } = typeCheck(path.join(project.dir, 'esm', 'tsconfig.json'));
//   expect(diagnostics).toEqual([]);
//
// Why a filter: with `skipLibCheck: false` the program checks every .d.ts it
// loads, and the declarations of @tensorflow/tfjs-core and tfjs-layers 4.22
// themselves carry errors under `strict` (and @webgpu/types clashes with
// TypeScript 6's lib.dom). Those are upstream and the same with or without
// normprune; asking the checker only about our files keeps them out without
// hiding anything in ours, and saves checking ~600 tfjs files per program.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

/** What {@link typeCheck} found. */
export interface TypeCheckResult {
  /**
   * One line per diagnostic, `file(line,col): TS<code>: message` with the file
   * relative to the tsconfig's directory (`<global>` when a diagnostic has no
   * file). Empty when the files checked compile.
   */
  diagnostics: string[];
  /** Every file of the program, as absolute real paths: shows which declarations resolved. */
  files: string[];
}

/** Options of {@link typeCheck}. */
export interface TypeCheckOptions {
  /**
   * Whether the semantic diagnostics of `file` (an absolute path) count.
   * Default: files outside any node_modules (the consumer's own sources) and
   * files of packed @normprune packages.
   */
  checked?: (file: string) => boolean;
}

/** The default of {@link TypeCheckOptions.checked}. */
export function ownFile(file: string): boolean {
  const f = file.split(path.sep).join('/');
  return !f.includes('/node_modules/') || f.includes('/node_modules/@normprune/');
}

/**
 * Reads `tsconfigPath` and type-checks its program: option, global and
 * syntactic diagnostics of every file, semantic diagnostics of the files
 * `checked` selects. The compiler options are the tsconfig's, unchanged; a
 * `.d.ts` is only checked when the tsconfig says `skipLibCheck: false`.
 */
export function typeCheck(tsconfigPath: string, options: TypeCheckOptions = {}): TypeCheckResult {
  const checked = options.checked ?? ownFile;
  const dir = path.dirname(path.resolve(tsconfigPath));
  const read = ts.readConfigFile(tsconfigPath, (f) => ts.sys.readFile(f));
  if (read.error) return { diagnostics: [format(read.error, dir)], files: [] };
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, dir, undefined, tsconfigPath);
  const program = ts.createProgram({
    rootNames: parsed.fileNames,
    options: parsed.options,
    projectReferences: parsed.projectReferences,
    configFileParsingDiagnostics: parsed.errors,
  });
  const files = program.getSourceFiles();
  const diagnostics: readonly ts.Diagnostic[] = [
    ...parsed.errors,
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...files.flatMap((sf) => program.getSyntacticDiagnostics(sf)),
    ...files.filter((sf) => checked(sf.fileName)).flatMap((sf) => program.getSemanticDiagnostics(sf)),
  ];
  return {
    diagnostics: diagnostics.filter((d) => !d.file || checked(d.file.fileName)).map((d) => format(d, dir)),
    files: files.map((sf) => fs.realpathSync(sf.fileName)),
  };
}

function format(d: ts.Diagnostic, dir: string): string {
  const text = ts.flattenDiagnosticMessageText(d.messageText, ' ');
  if (!d.file || d.start === undefined) return `<global>: TS${d.code}: ${text}`;
  const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
  const file = path.relative(dir, d.file.fileName).split(path.sep).join('/');
  return `${file}(${line + 1},${character + 1}): TS${d.code}: ${text}`;
}
