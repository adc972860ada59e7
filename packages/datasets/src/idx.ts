import { gunzipSync } from 'node:zlib';
import { DatasetError } from './errors.js';
import { readInputFile } from './input.js';

/** IDX magic numbers (big-endian uint32: 0x0000 0x08=ubyte, then the number of dimensions). */
export const IDX_LABELS_MAGIC = 2049;
export const IDX_IMAGES_MAGIC = 2051;

/** Gunzipped data larger than this is refused: real IDX files are < 50 MB. */
const MAX_GUNZIP_BYTES = 512 * 1024 * 1024;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** Gunzips with a size cap; zlib's errors become typed ones naming the file. */
export function gunzipChecked(buf: Uint8Array, file: string, maxBytes = MAX_GUNZIP_BYTES): Buffer {
  try {
    return gunzipSync(buf, { maxOutputLength: maxBytes });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new DatasetError('too-large', {
        file,
        expected: `<= ${maxBytes} bytes after gunzip`,
        found: 'more',
        cause: e,
      });
    }
    if (err.code === 'Z_BUF_ERROR' || /unexpected end/i.test(err.message)) {
      throw new DatasetError('truncated', { file, message: 'gzip stream ends early', cause: e });
    }
    throw new DatasetError('corrupt-archive', { file, message: `gzip: ${err.message}`, cause: e });
  }
}

/**
 * Parses an unsigned-byte IDX file (raw or gzip) and checks the header against
 * the byte count, so a truncated download cannot pass as a smaller data set.
 */
export function parseIdx(input: Uint8Array, file: string, expectedMagic: number): IdxArray {
  const buf = isGzip(input) ? gunzipChecked(input, file) : input;
  if (buf.length < 4)
    throw new DatasetError('truncated', { file, expected: '>= 4 header bytes', found: buf.length });
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== expectedMagic) {
    throw new DatasetError('bad-magic', {
      file,
      message: 'not an IDX file of the expected kind',
      expected: expectedMagic,
      found: magic,
    });
  }
  const ndims = buf[3];
  const headerBytes = 4 + 4 * ndims;
  if (buf.length < headerBytes)
    throw new DatasetError('truncated', {
      file,
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
      message: `IDX header says ${dims.join('x')}`,
      expected: `${expected} bytes`,
      found: `${buf.length} bytes`,
    });
  }
  if (buf.length > expected) {
    throw new DatasetError('size-mismatch', {
      file,
      message: `IDX header says ${dims.join('x')}`,
      expected: `${expected} bytes`,
      found: `${buf.length} bytes`,
    });
  }
  return { dims, data: buf.subarray(headerBytes) };
}

export function readIdxFile(file: string, expectedMagic: number): IdxArray {
  return parseIdx(readInputFile(file, 'IDX file'), file, expectedMagic);
}
