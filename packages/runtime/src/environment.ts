// NORMPRUNE_BACKEND and NORMPRUNE_THREADS: how initBackend reads them, and the
// check a program (the normprune CLI) runs before any work. No Node here: the
// browser build exports backendEnvironmentProblem too.
import type { BackendName } from './backend.js';

/** The backends, fastest first. @internal */
export const BACKENDS: readonly BackendName[] = ['node', 'wasm', 'cpu'];
const ENV_VAR = 'NORMPRUNE_BACKEND';
const THREADS_VAR = 'NORMPRUNE_THREADS';

/**
 * The wasm thread count: `NORMPRUNE_THREADS` when set (decimal digits, 1 to 64), else `threads`, else 1.
 * @internal
 */
export function resolveThreads(threads: number | undefined, env: Record<string, string | undefined>): number {
  const fromEnv = env[THREADS_VAR];
  const [value, source] =
    fromEnv !== undefined && fromEnv !== ''
      ? // Decimal digits only: Number() would also take "0x2", "2e0", " 2" and "2.0".
        [/^[0-9]+$/.test(fromEnv) ? Number(fromEnv) : NaN, `${THREADS_VAR}=${JSON.stringify(fromEnv)}`]
      : [
          threads ?? 1,
          `initBackend: threads ${typeof threads === 'number' ? threads : JSON.stringify(threads)}`,
        ];
  if (!Number.isInteger(value) || value < 1 || value > 64) {
    throw new Error(
      `${source} is not a thread count: use a whole number from 1 to 64${fromEnv !== undefined && fromEnv !== '' ? ` (or unset ${THREADS_VAR})` : ''}`,
    );
  }
  return value;
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
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!validName(fromEnv)) {
      throw new Error(
        `${ENV_VAR}=${JSON.stringify(fromEnv)} is not a backend normprune knows: use one of ${BACKENDS.join(', ')} (or unset ${ENV_VAR})`,
      );
    }
    return { first: fromEnv, source: `${ENV_VAR}=${fromEnv}` };
  }
  if (prefer !== undefined) {
    if (!validName(prefer)) {
      throw new Error(
        `initBackend: prefer must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(prefer)}`,
      );
    }
    return { first: prefer, source: `prefer: '${prefer}'` };
  }
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
  try {
    resolvePreference(undefined, env);
    resolveThreads(undefined, env);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
