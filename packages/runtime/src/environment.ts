// NORMPRUNE_BACKEND and NORMPRUNE_THREADS: how initBackend reads them, and the
// check a program (the normprune CLI) runs before any work. No Node here: the
// browser build exports backendEnvironmentProblem too.
import type { BackendName } from './backend.js';

/** The backends, fastest first. @internal */
export const BACKENDS: readonly BackendName[] = ['node', 'wasm', 'cpu'];
const ENV_VAR = 'NORMPRUNE_BACKEND';
const THREADS_VAR = 'NORMPRUNE_THREADS';

/** A thread count and who set it: `NORMPRUNE_THREADS=3` or `the threads option`. @internal */
export interface Threads {
  count: number;
  source: string;
}

/**
 * The wasm thread count: `NORMPRUNE_THREADS` when set (decimal digits, 1 to 64), else `threads`, else 1,
 * with who set it (for the note when a backend other than wasm ignores it).
 * The option is checked even when the variable overrides it, so that an invalid one does not pass
 * wherever the variable happens to be set.
 * @internal
 */
export function resolveThreads(
  threads: number | undefined,
  env: Record<string, string | undefined>,
): Threads {
  const fromEnv = env[THREADS_VAR];
  const set = fromEnv !== undefined && fromEnv !== '';
  const check = (value: unknown, source: string, unset: string): number => {
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 64) {
      throw new Error(`${source} is not a thread count: use a whole number from 1 to 64${unset}`);
    }
    return value as number;
  };
  const fromVariable = set
    ? // Decimal digits only: Number() would also take "0x2", "2e0", " 2" and "2.0".
      check(
        /^[0-9]+$/.test(fromEnv) ? Number(fromEnv) : NaN,
        `${THREADS_VAR}=${JSON.stringify(fromEnv)}`,
        ` (or unset ${THREADS_VAR})`,
      )
    : undefined;
  const fromOption = check(
    threads ?? 1,
    `initBackend: threads ${typeof threads === 'number' ? threads : JSON.stringify(threads)}`,
    '',
  );
  return fromVariable !== undefined
    ? { count: fromVariable, source: `${THREADS_VAR}=${fromEnv}` }
    : { count: fromOption, source: 'the threads option' };
}

function validName(value: unknown): value is BackendName {
  return typeof value === 'string' && (BACKENDS as readonly string[]).includes(value);
}

/**
 * The backend to try first: `NORMPRUNE_BACKEND` when set, else `prefer`.
 * @internal
 */
export function resolvePreference(
  prefer: BackendName | undefined,
  env: Record<string, string | undefined>,
): { first?: BackendName; source?: string } {
  const fromEnv = env[ENV_VAR];
  const set = fromEnv !== undefined && fromEnv !== '';
  if (set && !validName(fromEnv)) {
    throw new Error(
      `${ENV_VAR}=${JSON.stringify(fromEnv)} is not a backend normprune knows: use one of ${BACKENDS.join(', ')} (or unset ${ENV_VAR})`,
    );
  }
  // Checked even when the variable overrides it, so that an invalid one does not pass wherever
  // the variable happens to be set.
  if (prefer !== undefined && !validName(prefer)) {
    throw new Error(
      `initBackend: prefer must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(prefer)}`,
    );
  }
  if (set) return { first: fromEnv as BackendName, source: `${ENV_VAR}=${fromEnv}` };
  if (prefer !== undefined) return { first: prefer, source: `prefer: '${prefer}'` };
  return {};
}

/**
 * What is wrong with `NORMPRUNE_BACKEND` and `NORMPRUNE_THREADS` in `env`, in the words
 * `initBackend` would refuse them with, or `undefined` when each is unset, empty or valid.
 * For a program that checks them beside its own flags before doing any work (the `normprune`
 * CLI calls a bad value a usage error, as it does a bad `--backend`):
 *
 * ```ts
 * const problem = backendEnvironmentProblem(process.env);
 * if (problem) { console.error(problem); process.exit(2); }
 * ```
 */
export function backendEnvironmentProblem(env: Record<string, string | undefined>): string | undefined {
  // A missing env is the caller's mistake, not a problem of the variables: returned, its TypeError
  // ("Cannot read properties of undefined (reading 'NORMPRUNE_BACKEND')") read as a bad variable.
  if (typeof env !== 'object' || env === null)
    throw new TypeError(
      `backendEnvironmentProblem(env): env must be an object of variables, such as process.env; got ${env === null ? 'null' : typeof env === 'string' ? JSON.stringify(env) : String(env)}`,
    );
  try {
    resolvePreference(undefined, env);
    resolveThreads(undefined, env);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
