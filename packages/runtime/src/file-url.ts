// Routes tfjs's `file://` strings to `fileSystem`, so that tfjs-node code
// (`model.save('file://dir')`, `tfl.loadLayersModel('file://dir/model.json')`)
// runs unchanged without tfjs-node. index.ts registers the routers on import,
// as tfjs-node does; the browser entry never does (there is no file system).
import * as tf from '@tensorflow/tfjs-core';
import { fileSystem } from './file-system.js';
import { ModelFileError } from './errors.js';

const SCHEME = 'file://';

/** What tfjs's router registry takes (its type is not exported from tfjs-core). */
type IORouter = Parameters<typeof tf.io.registerSaveRouter>[0];

/**
 * State shared by every copy of this module in the process: the CommonJS and
 * the ES module build of the package are two modules, each with its own
 * module-level variables, but both register with the same tfjs-core (Node
 * resolves `@tensorflow/tfjs-core` to its CommonJS build for `import` too).
 * The key must never change, or two versions would both register.
 */
interface SharedState {
  /**
   * The `tf.io.registerSaveRouter` functions routers were registered with:
   * one per tfjs-core copy, so a second copy of tfjs-core gets its own.
   */
  registeredWith: WeakSet<object>;
  /** True while a router asks the others whether they take a URL. */
  probing: boolean;
}

const STATE = Symbol.for('@normprune/runtime: file:// IO routers');

function sharedState(): SharedState {
  const g = globalThis as { [STATE]?: SharedState };
  return (g[STATE] ??= { registeredWith: new WeakSet(), probing: false });
}

/**
 * True when another router registered with tfjs takes `url` (tfjs-node's
 * `file://` router, or one of the user's). tfjs throws when two routers take
 * one URL, so ours then steps aside. Asked at every save and load, not at
 * registration, since tfjs-node may be loaded after this package (as
 * `initBackend()` does).
 */
function takenByAnother(kind: 'save' | 'load', url: string | string[], options?: tf.io.LoadOptions): boolean {
  const state = sharedState();
  state.probing = true;
  try {
    const handlers = kind === 'save' ? tf.io.getSaveHandlers(url) : tf.io.getLoadHandlers(url, options);
    return handlers.length > 0;
  } finally {
    state.probing = false;
  }
}

function router(kind: 'save' | 'load') {
  return (url: string | string[], options?: tf.io.LoadOptions): tf.io.IOHandler | null => {
    // While probing, the other routers are asked, not this one (nor the
    // router of another copy of this module, were one registered).
    if (sharedState().probing) return null;
    const urls = Array.isArray(url) ? url : [url];
    if (urls.length === 0 || !urls.every((u) => typeof u === 'string' && u.startsWith(SCHEME))) return null;
    if (takenByAnother(kind, url, options)) return null;
    if (urls.length > 1) {
      // tfjs-node's form for a GraphDef: the .pb file and its weights manifest.
      throw new ModelFileError(
        'unsupported',
        urls.join(', '),
        `@normprune/runtime: a list of ${urls.length} file:// URLs (${urls.join(', ')}) is tfjs-node's form for ` +
          "a binary GraphDef model, which fileSystem does not read; it loads a model.json with its weight shards: pass one URL, e.g. 'file:///models/m/model.json'",
      );
    }
    // As tfjs-node's router does, the rest of the string is the path, taken
    // literally: `file:///ckpt/epoch#3` is the folder `epoch#3`, `my%20dir` keeps
    // its `%20` (fileSystem given the URL itself decodes it as a URL, and
    // refuses a `#...` or `?...`, which a URL's path does not include). A bare
    // `file://` gets fileSystem's own error.
    const rest = urls[0].slice(SCHEME.length);
    return fileSystem(rest === '' ? urls[0] : rest);
  };
}

/**
 * Registers the `file://` save and load routers with tfjs-core, once per
 * process and tfjs-core copy however often it is called (both module builds
 * call it when loaded). index.ts calls it on import. @internal
 */
export function registerFileUrlRouters(): void {
  const { registeredWith } = sharedState();
  if (registeredWith.has(tf.io.registerSaveRouter)) return;
  registeredWith.add(tf.io.registerSaveRouter);
  // tfjs types a router as never returning null, yet null means "not mine".
  tf.io.registerSaveRouter(router('save') as IORouter);
  tf.io.registerLoadRouter(router('load') as IORouter);
}
