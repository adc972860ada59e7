import { gunzipSync } from 'node:zlib';
import { DatasetError } from './errors.js';
import { gunzipProblem, isGzip, MAX_GUNZIP_BYTES, parseIdxBytes, type IdxArray } from './idx-bytes.js';
import { readInputFile } from './input.js';

export { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, isGzip } from './idx-bytes.js';
export type { IdxArray } from './idx-bytes.js';

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
    throw gunzipProblem(e, file);
  }
}

/**
 * Parses an unsigned-byte IDX file (raw or gzip) and checks the header against
 * the byte count, so a truncated download cannot pass as a smaller data set.
 */
export function parseIdx(input: Uint8Array, file: string, expectedMagic: number): IdxArray {
  return parseIdxBytes(isGzip(input) ? gunzipChecked(input, file) : input, file, expectedMagic);
}

export function readIdxFile(file: string, expectedMagic: number): IdxArray {
  return parseIdx(readInputFile(file, 'IDX file'), file, expectedMagic);
}
