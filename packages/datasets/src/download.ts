import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  createWriteStream,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  type WriteStream,
} from 'node:fs';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DatasetError } from './errors.js';
import { removeStaleTemps, tempPath } from './cache.js';
import { gunzipChecked } from './idx.js';

/** A file to fetch and the checksum its publisher gives for it. */
export interface RemoteFile {
  url: string;
  md5?: string;
  sha256?: string;
  /**
   * md5 of the gunzipped content. A gzip file whose own md5 differs from
   * `md5` is still accepted when its content has this checksum: a mirror
   * (or a distribution package) that re-compressed the official file.
   */
  contentMd5?: string;
}

export interface DownloadOptions {
  attempts?: number;
  backoffMs?: number;
  /** Idle socket timeout. */
  timeoutMs?: number;
}

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    url: string,
  ) {
    super(`HTTP ${status} from ${url}`);
  }
}

function get(url: string, timeoutMs: number, redirects = 5): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    let response: http.IncomingMessage | undefined;
    const req = lib.get(url, { headers: { 'user-agent': '@normprune/datasets' } }, (res) => {
      response = res;
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects <= 0) return reject(new Error(`too many redirects from ${url}`));
        return resolve(get(new URL(res.headers.location, url).toString(), timeoutMs, redirects - 1));
      }
      if (status !== 200) {
        res.resume();
        return reject(new HttpStatusError(status, url));
      }
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => {
      const stalled = new Error(`no data from ${url} for ${timeoutMs} ms`);
      // Once the response has begun, the promise is settled and its reader sees only the
      // response stream: without this, a stall mid-body read as Node's bare 'aborted'.
      response?.destroy(stalled);
      req.destroy(stalled);
    });
    req.on('error', reject);
  });
}

async function fetchOnce(remote: RemoteFile, dest: string, timeoutMs: number): Promise<void> {
  const tmp = tempPath(dest);
  let out: WriteStream | undefined;
  try {
    const res = await get(remote.url, timeoutMs);
    const declared =
      res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
    const md5 = createHash('md5');
    const sha = createHash('sha256');
    let received = 0;
    const hasher = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        md5.update(chunk);
        sha.update(chunk);
        received += chunk.length;
        cb(null, chunk);
      },
    });
    out = createWriteStream(tmp);
    try {
      await pipeline(res, hasher, out);
    } catch (e) {
      // A connection dropped mid-transfer rejects the pipeline ("aborted"): say what it cost.
      if (declared !== undefined && received < declared)
        throw new DatasetError('truncated', {
          file: remote.url,
          message: `download ended early (${(e as Error).message})`,
          expected: `${declared} bytes`,
          found: `${received} bytes`,
        });
      throw e;
    }
    if (!res.complete || (declared !== undefined && received !== declared)) {
      throw new DatasetError('truncated', {
        file: remote.url,
        message: 'download ended early',
        // Without a content-length, the server's end of the response is all there was to go by.
        expected: declared === undefined ? 'a complete response' : `${declared} bytes`,
        found: `${received} bytes`,
      });
    }
    const gotMd5 = md5.digest('hex');
    const gotSha = sha.digest('hex');
    if (
      remote.md5 &&
      gotMd5 !== remote.md5.toLowerCase() &&
      !(remote.contentMd5 && gunzippedMd5(tmp) === remote.contentMd5.toLowerCase())
    ) {
      throw new DatasetError('checksum-mismatch', {
        file: remote.url,
        message: remote.contentMd5
          ? 'md5 of the downloaded file differs from the published one, and so does the md5 of its gunzipped content'
          : 'md5 of the downloaded file differs from the published one',
        expected: remote.md5,
        found: gotMd5,
      });
    }
    if (remote.sha256 && gotSha !== remote.sha256.toLowerCase()) {
      throw new DatasetError('checksum-mismatch', {
        file: remote.url,
        message: 'sha256 of the downloaded file differs from the published one',
        expected: remote.sha256,
        found: gotSha,
      });
    }
    renameSync(tmp, dest);
    removeStaleTemps(dest);
  } finally {
    // A failed pipeline may still be opening the file: wait, or the file would appear after the removal.
    if (out && !out.closed) await once(out, 'close').catch(() => undefined);
    rmSync(tmp, { force: true });
  }
}

/** md5 of a gzip file's content; '' when it is not valid gzip. */
export function gunzippedMd5(file: string): string {
  try {
    return createHash('md5')
      .update(gunzipChecked(readFileSync(file), file))
      .digest('hex');
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** errno codes of a local write that a retry cannot fix (read-only, full, not a folder, no permission). */
const LOCAL_WRITE_ERRORS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'ENOTDIR', 'EEXIST']);

function unwritableCache(folder: string, e: unknown): DatasetError {
  return new DatasetError('download-failed', {
    file: folder,
    message: `cannot write the cache folder ${folder} (${(e as Error).message}); make it writable, or choose another cache folder with { cacheDir } or XDG_CACHE_HOME`,
    cause: e,
  });
}

/**
 * Downloads `remote` to `dest` atomically: the bytes go to a temporary file,
 * are verified against the published checksum, and only then renamed into
 * place, so an interrupted or corrupt transfer never leaves a cache entry.
 * Network errors, 5xx answers and bad checksums are retried with exponential
 * backoff; 4xx answers are not (the file is not there).
 */
export async function downloadFile(remote: RemoteFile, dest: string, o: DownloadOptions = {}): Promise<void> {
  const attempts = o.attempts ?? 3;
  const backoff = o.backoffMs ?? 500;
  // Checked before any transfer: a read-only cache must not cost three downloads and a raw EACCES.
  const folder = dirname(dest);
  try {
    mkdirSync(folder, { recursive: true });
    accessSync(folder, constants.W_OK);
  } catch (e) {
    throw unwritableCache(folder, e);
  }
  let last: unknown;
  let tried = 0;
  for (let i = 0; i < attempts; i++) {
    tried++;
    if (i > 0) await sleep(backoff * 2 ** (i - 1));
    try {
      await fetchOnce(remote, dest, o.timeoutMs ?? 60_000);
      return;
    } catch (e) {
      last = e;
      const errno = (e as NodeJS.ErrnoException).code;
      if (!(e instanceof DatasetError) && errno !== undefined && LOCAL_WRITE_ERRORS.has(errno))
        throw unwritableCache(folder, e);
      if (
        e instanceof HttpStatusError &&
        e.status >= 400 &&
        e.status < 500 &&
        e.status !== 408 &&
        e.status !== 429
      )
        break;
    }
  }
  if (last instanceof DatasetError && last.code === 'checksum-mismatch') {
    const cut = last.message.indexOf('; file: ');
    const what = cut < 0 ? last.message : last.message.slice(0, cut);
    throw new DatasetError('checksum-mismatch', {
      file: last.file,
      message:
        `${what}, in ${tried === 1 ? '1 download' : `${tried} downloads`}: the server sends another file ` +
        "(a wrong mirror or URL, a proxy's or captive portal's page); check the mirror, or fetch the file yourself, " +
        'check its md5, and load it from disk ({ file } or { dir })',
      expected: last.expected,
      found: last.found,
      cause: last,
    });
  }
  // The URL is said once, by the error below.
  const reason =
    last instanceof DatasetError && last.file === remote.url
      ? last.message.replace(`; file: ${remote.url}`, '')
      : last instanceof Error
        ? last.message
        : String(last);
  throw new DatasetError('download-failed', {
    file: remote.url,
    message: `download failed after ${tried} attempt(s): ${reason}`,
    cause: last,
  });
}
