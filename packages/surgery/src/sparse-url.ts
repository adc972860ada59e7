// Loading a sparse export from a URL with fetch: the browser build's
// loadSparseModel, and Node's for an http(s):// URL. Nothing here needs Node;
// the files are read through the same reader as on disk (sparse-format.ts).
import type * as tfl from '@tensorflow/tfjs-layers';
import { describeValue as describe, optionsProblem } from '@normprune/layers';
import { ModelFileError } from '@normprune/runtime';
import { readSparseModel, type SparseFiles } from './sparse-format.js';

/**
 * Options of {@link loadSparseModel} for a URL, as tfjs's `io.http` takes them. On disk (Node,
 * a path or `file://` URL) they are not used.
 */
export interface LoadSparseOptions {
  /**
   * Passed to every fetch (model.json, the manifest, the data file): headers such as
   * `Authorization`, `credentials`, `cache`, an abort `signal`.
   */
  requestInit?: RequestInit;
  /** The fetch to use instead of the global `fetch`: a wrapper, a polyfill, a test's. */
  fetchFunc?: (url: string, init?: RequestInit) => Promise<Response>;
}

/**
 * Refuses `options` of loadSparseModel that are not an object, hold a key other than
 * `requestInit` and `fetchFunc` (naming it and the key it likely misspells), or whose values
 * are of the wrong type: a `ModelFileError` with code `invalid-argument`, for `file` (what the
 * call names). Checked on disk too, where the options are not used, so that code shared with
 * the browser fails the same way in both.
 * @internal
 */
export function checkLoadOptions(options: unknown, file: string): void {
  const refuse = (why: string) => new ModelFileError('invalid-argument', file, `loadSparseModel: ${why}`);
  const problem = optionsProblem(options, ['requestInit', 'fetchFunc'], '{ requestInit: { headers } }');
  if (problem !== undefined) throw refuse(problem);
  const o = (options ?? {}) as Record<string, unknown>;
  if (o.requestInit !== undefined && (o.requestInit === null || typeof o.requestInit !== 'object'))
    throw refuse(
      `options.requestInit must be an object of fetch options such as { headers, credentials }, got ${describe(o.requestInit)}`,
    );
  if (o.fetchFunc !== undefined && typeof o.fetchFunc !== 'function')
    throw refuse(
      `options.fetchFunc must be a function (url, init) => Promise<Response>, got ${describe(o.fetchFunc)}`,
    );
}

/** The folder URL and model.json URL that `url` stands for, resolved against the page's address. */
function modelUrl(url: unknown): { folder: URL; model: URL } {
  if (typeof url !== 'string' || url === '')
    throw new ModelFileError(
      'invalid-argument',
      String(url),
      `loadSparseModel: url must be the URL of a sparse export's model.json or of its folder, got ${describe(url)}`,
    );
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  let model: URL;
  try {
    model = new URL(url, base);
  } catch {
    throw new ModelFileError(
      'invalid-argument',
      url,
      `loadSparseModel: '${url}' is not a URL` +
        (base === undefined ? ' (a relative URL needs a page to resolve it against)' : ''),
    );
  }
  if (model.protocol !== 'http:' && model.protocol !== 'https:')
    throw new ModelFileError(
      'invalid-argument',
      url,
      `loadSparseModel: '${url}' is a ${model.protocol} URL; a sparse export is loaded over http: or https:` +
        " (tfjs's indexeddb:// and localstorage:// hold only 'tfjs' models)",
    );
  model.hash = '';
  // A folder: its model.json, keeping the query (as tfjs keeps a model.json URL's for its weights).
  if (!model.pathname.endsWith('.json'))
    model.pathname = model.pathname.endsWith('/')
      ? `${model.pathname}model.json`
      : `${model.pathname}/model.json`;
  const folder = new URL(model.href);
  folder.pathname = folder.pathname.slice(0, folder.pathname.lastIndexOf('/') + 1);
  folder.search = '';
  return { folder, model };
}

/**
 * The sparse export at `url` (its model.json or its folder), read with fetch. Files the
 * manifests name are fetched from the folder of model.json, with model.json's query string
 * (as tfjs does for weight files); a name that leaves the folder is refused.
 */
function urlFiles(url: string, options: LoadSparseOptions = {}): SparseFiles {
  const { folder, model } = modelUrl(url);
  checkLoadOptions(options, model.href);
  const fetchFunc = options.fetchFunc ?? (globalThis as { fetch?: LoadSparseOptions['fetchFunc'] }).fetch;
  if (typeof fetchFunc !== 'function')
    throw new ModelFileError(
      'invalid-argument',
      model.href,
      `loadSparseModel: there is no fetch here to read ${model.href}; pass one as options.fetchFunc`,
    );
  return {
    folder: folder.href,
    modelFile: model.href,
    namedOtherJson: !model.pathname.endsWith('/model.json'),
    locate(name) {
      // '?' and '#' would not name a file, an encoded slash would name one in another folder.
      if (typeof name !== 'string' || name === '' || /[?#]|%2f|%5c/i.test(name)) return undefined;
      let file: URL;
      try {
        file = new URL(name, folder);
      } catch {
        return undefined;
      }
      // A name such as '..' or '.' resolves to the folder itself or above it.
      const base = file.pathname.slice(0, file.pathname.lastIndexOf('/') + 1);
      if (file.origin !== folder.origin || base !== folder.pathname || file.pathname === base)
        return undefined;
      file.search = model.search;
      return file.href;
    },
    async read(file) {
      let response: Response;
      try {
        response = await fetchFunc.call(globalThis, file, options.requestInit);
      } catch (e) {
        throw new ModelFileError(
          'read-failed',
          file,
          `loadSparseModel: cannot fetch ${file}: ${(e as Error)?.message ?? String(e)}`,
          e,
        );
      }
      if (!response.ok) {
        // No model.json: nothing exported there; a file model.json names is gone: a damaged export.
        const gone = response.status === 404 || response.status === 410;
        throw new ModelFileError(
          !gone ? 'read-failed' : file === model.href ? 'missing' : 'damaged',
          file,
          `loadSparseModel: cannot read ${file}: the server answered HTTP ${response.status}` +
            (response.statusText ? ` ${response.statusText}` : ''),
        );
      }
      try {
        return new Uint8Array(await response.arrayBuffer());
      } catch (e) {
        throw new ModelFileError(
          'read-failed',
          file,
          `loadSparseModel: cannot read ${file}: ${(e as Error)?.message ?? String(e)}`,
          e,
        );
      }
    },
    tfjsLoader: 'tfl.loadLayersModel(url) of @tensorflow/tfjs-layers',
  };
}

/**
 * Loads a sparse export from `url`: the URL of its model.json, as tfjs's `loadLayersModel(url)`
 * takes it, or of the folder that holds it.
 * @internal
 */
export async function loadSparseModelFromUrl(
  url: string,
  options?: LoadSparseOptions,
): Promise<tfl.LayersModel> {
  return readSparseModel(urlFiles(url, options));
}
