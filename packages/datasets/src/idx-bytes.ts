// IDX parsing that needs no Node API: the header checks, a Split from an image
// file and a label file, and gunzip through the web's DecompressionStream. The
// Node loaders and the browser build share it.
import { DatasetError } from './errors.js';
import { checkKeys } from './options.js';
import type { Split } from './types.js';

/** IDX magic numbers (big-endian uint32: 0x0000 0x08=ubyte, then the number of dimensions). */
export const IDX_LABELS_MAGIC = 2049;
export const IDX_IMAGES_MAGIC = 2051;

/** Gunzipped data larger than this is refused: real IDX files are < 50 MB. */
export const MAX_GUNZIP_BYTES = 512 * 1024 * 1024;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** What an IDX magic number is, for an error: `an IDX image file's`, or undefined for another. */
function magicKind(magic: number): string | undefined {
  return magic === IDX_IMAGES_MAGIC
    ? "an IDX image file's"
    : magic === IDX_LABELS_MAGIC
      ? "an IDX label file's"
      : undefined;
}

/** The fix for a file cut short: said by every `truncated` error about a file. */
export const CUT_SHORT_FIX =
  'the file is cut short (an interrupted download or copy): replace it with a complete copy of the official file';

/**
 * Parses the bytes of an unsigned-byte IDX file (not gzipped) and checks the header against
 * the byte count, so a truncated download cannot pass as a smaller data set.
 */
export function parseIdxBytes(buf: Uint8Array, file: string, expectedMagic: number): IdxArray {
  if (buf.length < 4)
    throw new DatasetError('truncated', {
      file,
      message: `IDX file ends early, within its 4-byte magic number; ${CUT_SHORT_FIX}`,
      expected: '>= 4 header bytes',
      found: buf.length,
    });
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== expectedMagic) {
    const wanted = expectedMagic === IDX_IMAGES_MAGIC ? 'image' : 'label';
    const kind = magicKind(magic);
    throw new DatasetError('bad-magic', {
      file,
      message: kind
        ? `not an IDX ${wanted} file: its magic number ${magic} is ${kind}; the image and label files are swapped or misnamed (*-images-idx3-ubyte holds the images, *-labels-idx1-ubyte the labels)`
        : `not an IDX file (an IDX ${wanted} file starts with the magic number ${expectedMagic}, big-endian); replace it with the official file`,
      expected: expectedMagic,
      found: magic,
    });
  }
  const ndims = buf[3];
  const headerBytes = 4 + 4 * ndims;
  if (buf.length < headerBytes)
    throw new DatasetError('truncated', {
      file,
      message: `IDX file ends early, within its header; ${CUT_SHORT_FIX}`,
      expected: `>= ${headerBytes} header bytes`,
      found: buf.length,
    });
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const expected = headerBytes + count;
  if (buf.length < expected) {
    throw new DatasetError('truncated', {
      file,
      message: `IDX file ends early: its header says ${dims.join('x')}; ${CUT_SHORT_FIX}`,
      expected: `${expected} bytes`,
      found: `${buf.length} bytes`,
    });
  }
  if (buf.length > expected) {
    throw new DatasetError('size-mismatch', {
      file,
      message: `IDX file has ${buf.length - expected} bytes more than its header (${dims.join('x')}) describes: bytes appended, or another file under this name; replace it with the official file`,
      expected: `${expected} bytes`,
      found: `${buf.length} bytes`,
    });
  }
  return { dims, data: buf.subarray(headerBytes) };
}

/**
 * A Split from a parsed image file (`[n, h, w]`) and label file (`[n]`), each label checked to
 * be below `numClasses`; `title` names the data set in that error.
 */
export function idxArraysToSplit(
  images: IdxArray,
  labels: IdxArray,
  numClasses: number,
  imageFile: string,
  labelFile: string,
  title?: string,
): Split {
  if (images.dims.length !== 3)
    throw new DatasetError('size-mismatch', {
      file: imageFile,
      message: 'images must be [n, h, w]',
      expected: 3,
      found: images.dims.length,
    });
  if (labels.dims.length !== 1)
    throw new DatasetError('size-mismatch', {
      file: labelFile,
      message: 'labels must be [n]',
      expected: 1,
      found: labels.dims.length,
    });
  const [n, h, w] = images.dims;
  // An image of no pixels loaded as an empty-looking set and failed later, far from this file.
  if (h === 0 || w === 0)
    throw new DatasetError('size-mismatch', {
      file: imageFile,
      message: `its header says ${images.dims.join('x')}: images of 0 pixels; replace it with the official file`,
      expected: 'height and width >= 1',
      found: `${h}x${w}`,
    });
  if (labels.dims[0] !== n) {
    throw new DatasetError('size-mismatch', {
      file: labelFile,
      message: `label count differs from the image count of ${imageFile}`,
      expected: n,
      found: labels.dims[0],
    });
  }
  for (let i = 0; i < n; i++) {
    if (labels.data[i] >= numClasses) {
      throw new DatasetError('label-out-of-range', {
        file: labelFile,
        message: title
          ? `label #${i} is ${labels.data[i]}, but ${title} has ${numClasses} classes (labels 0..${numClasses - 1}): not ${title}'s label file; replace it with the official file`
          : `label #${i} is ${labels.data[i]}, but numClasses is ${numClasses} (labels 0..${numClasses - 1}): pass { numClasses } for a set with more classes, or fix the label file`,
        expected: `0..${numClasses - 1}`,
        found: labels.data[i],
      });
    }
  }
  return { images: images.data, labels: labels.data, count: n, shape: [h, w, 1], numClasses };
}

/** What a failed gunzip (zlib's or a DecompressionStream's) means: a stream cut short, or corrupt data. */
export function gunzipProblem(e: unknown, file: string): DatasetError {
  const err = e as Error & { code?: string };
  if (err.code === 'Z_BUF_ERROR' || /unexpected end|truncat|incomplete/i.test(err.message))
    return new DatasetError('truncated', {
      file,
      message: `gzip stream ends early: ${CUT_SHORT_FIX}`,
      cause: e,
    });
  return new DatasetError('corrupt-archive', {
    file,
    message: `gzip: ${err.message}: the file is damaged; replace it with a good copy of the official file`,
    cause: e,
  });
}

/** Gunzips with the web's DecompressionStream (browsers, Node >= 18), at most `maxBytes` out. */
async function gunzipStream(input: Uint8Array, file: string, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const source = new ReadableStream<BufferSource>({
      start(controller) {
        controller.enqueue(input as Uint8Array<ArrayBuffer>);
        controller.close();
      },
    });
    const reader = source.pipeThrough(new DecompressionStream('gzip')).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel();
        throw new DatasetError('too-large', {
          file,
          expected: `<= ${maxBytes} bytes after gunzip`,
          found: 'more',
        });
      }
      chunks.push(value);
    }
  } catch (e) {
    throw e instanceof DatasetError ? e : gunzipProblem(e, file);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Options of `idxSplit`. */
export interface IdxSplitOptions {
  /** Labels must be below this (the depth of one-hot labels). Default 10 (MNIST, Fashion-MNIST). */
  numClasses?: number;
  /** Names for the two inputs in errors (a URL or a file name). */
  names?: {
    /** The image file's name. Default `'images'`. */
    images?: string;
    /** The label file's name. Default `'labels'`. */
    labels?: string;
  };
}

/**
 * A Split from the bytes of an IDX image file and an IDX label file, as MNIST and
 * Fashion-MNIST publish them (`train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, raw or
 * `.gz`): for bytes you fetched or read yourself, in a browser as in Node. The headers are
 * checked against the byte counts, the image and label counts against each other, and every
 * label against `numClasses`; a problem is a DatasetError naming the input.
 *
 * ```ts
 * const [images, labels] = await Promise.all(
 *   ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'].map(async (f) =>
 *     new Uint8Array(await (await fetch(`/data/${f}`)).arrayBuffer()),
 *   ),
 * );
 * const train = await idxSplit(images, labels);
 * ```
 */
export async function idxSplit(
  images: Uint8Array,
  labels: Uint8Array,
  options: IdxSplitOptions = {},
): Promise<Split> {
  const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(options))
    throw new DatasetError('invalid-argument', {
      message: 'idxSplit(images, labels, options): options must be an object such as { numClasses, names }',
      found: JSON.stringify(options) ?? String(options),
    });
  checkKeys(options, ['numClasses', 'names'], 'idxSplit options', { classes: ['numClasses'] });
  if (options.names !== undefined) {
    if (!isObject(options.names))
      throw new DatasetError('invalid-argument', {
        message:
          "idxSplit: names must be an object such as { images, labels }, the two inputs' names for errors",
        found: JSON.stringify(options.names) ?? String(options.names),
      });
    checkKeys(options.names, ['images', 'labels'], 'idxSplit names');
  }
  const numClasses = options.numClasses ?? 10;
  const imageName = options.names?.images ?? 'images';
  const labelName = options.names?.labels ?? 'labels';
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256)
    throw new DatasetError('invalid-argument', {
      message: 'idxSplit: numClasses must be an integer from 1 to 256',
      found: String(numClasses),
    });
  for (const [name, bytes] of [
    [imageName, images],
    [labelName, labels],
  ] as const)
    if (!(bytes instanceof Uint8Array))
      throw new DatasetError('invalid-argument', {
        file: name,
        message:
          "idxSplit: expected the file's bytes as a Uint8Array (new Uint8Array(await response.arrayBuffer()))",
      });
  const bytesOf = (b: Uint8Array, name: string) =>
    isGzip(b) ? gunzipStream(b, name, MAX_GUNZIP_BYTES) : Promise.resolve(b);
  const imageArray = parseIdxBytes(await bytesOf(images, imageName), imageName, IDX_IMAGES_MAGIC);
  const labelArray = parseIdxBytes(await bytesOf(labels, labelName), labelName, IDX_LABELS_MAGIC);
  return idxArraysToSplit(imageArray, labelArray, numClasses, imageName, labelName);
}
