// Loading optional packages the same way from both builds of this package.
// The CommonJS build has `require`; the ES module build has not, and cannot
// name `import.meta` either, because one source compiles to both formats.
import { createRequire } from 'node:module';

/** The file this module was loaded from, as a path or a file:// URL. */
function ownLocation(): string | undefined {
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_, callSites) => callSites;
    const sites = new Error().stack as unknown as NodeJS.CallSite[] | undefined;
    return sites?.[0]?.getFileName() ?? undefined;
  } catch {
    return undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
}

let cached: NodeJS.Require | undefined;

/**
 * A `require` that resolves from this package's location (so peer packages
 * are found next to the package, not next to the process's cwd).
 */
export function packageRequire(): NodeJS.Require {
  if (cached) return cached;
  // Under Jest and in the CommonJS build this is the module's own require.
  if (typeof require === 'function') return (cached = require);
  cached = createRequire(ownLocation() ?? `${process.cwd()}/noop.js`);
  return cached;
}

/**
 * Loads a package by name. CommonJS (and Jest, whose module registry must
 * hand out the same `@tensorflow/tfjs-core` instance the caller uses) goes
 * through `require`; the ES module build uses a dynamic `import()`. Either
 * way Node resolves the tfjs packages to their CommonJS `main`, so both
 * share a single tfjs-core engine.
 */
export async function loadModule(name: string): Promise<unknown> {
  if (typeof require === 'function') {
    const req = require;
    return req(name);
  }
  return import(name);
}

/**
 * Whether `error` says that `name` itself is not installed (as opposed to
 * `name` being present but failing to load, e.g. a missing native library
 * or one of its own dependencies).
 */
export function isNotInstalled(error: unknown, name: string): boolean {
  const e = error as { code?: string; message?: string } | null;
  if (!e || (e.code !== 'MODULE_NOT_FOUND' && e.code !== 'ERR_MODULE_NOT_FOUND')) return false;
  const firstLine = String(e.message ?? '').split('\n')[0];
  return firstLine.includes(`'${name}'`) || firstLine.includes(`"${name}"`) || firstLine.endsWith(name);
}
