/**
 * What went wrong while reading, verifying or fetching a data set. One code per
 * failure a caller may want to tell apart (e.g. retry on `download-failed`,
 * re-download on `checksum-mismatch`, ask the user for a file on `offline`).
 */
export type DatasetErrorCode =
  | 'truncated'
  | 'bad-magic'
  | 'size-mismatch'
  | 'label-out-of-range'
  | 'checksum-mismatch'
  | 'unknown-class'
  | 'missing-class'
  | 'missing-file'
  | 'bad-image'
  | 'unsafe-archive'
  | 'corrupt-archive'
  | 'too-large'
  | 'offline'
  | 'download-failed'
  | 'invalid-argument';

/** Set on every DatasetError by every copy of this package (see its `Symbol.hasInstance`). */
const BRAND = Symbol.for('normprune.DatasetError');

/**
 * The one error type this package throws for bad data: it names the file,
 * what was expected and what was found, so a user can fix the input instead of
 * reading a stack trace from deep inside tfjs.
 */
export class DatasetError extends Error {
  /**
   * `instanceof` that also holds for an error made by another copy of this package in the same
   * process (its CommonJS and ES module builds both loaded, or two installed versions of it); a
   * subclass's `instanceof` stays a plain prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      Function.prototype[Symbol.hasInstance].call(this, value) ||
      (this === DatasetError && typeof value === 'object' && value !== null && BRAND in value)
    );
  }

  /** Machine-readable kind of failure. */
  readonly code: DatasetErrorCode;
  /** The file (or archive entry, or URL) the problem was found in, when there is one. */
  readonly file?: string;
  /** What the reader expected (a magic number, a byte count, a checksum, ...). */
  readonly expected?: string | number;
  /** What it found instead. */
  readonly found?: string | number;

  /** Builds the error; the message is composed from the fields when not given. */
  constructor(
    code: DatasetErrorCode,
    details: {
      file?: string;
      expected?: string | number;
      found?: string | number;
      message?: string;
      cause?: unknown;
    },
  ) {
    const parts = [details.message ?? code];
    if (details.file !== undefined) parts.push(`file: ${details.file}`);
    if (details.expected !== undefined) parts.push(`expected: ${details.expected}`);
    if (details.found !== undefined) parts.push(`found: ${details.found}`);
    super(parts.join('; '), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'DatasetError';
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    this.file = details.file;
    this.expected = details.expected;
    this.found = details.found;
  }
}

/** A value as an error's `found` shows it: a string quoted, so that "42" is not read as 42. @internal */
export function shown(v: unknown): string | number {
  return typeof v === 'number' ? v : typeof v === 'string' ? `${JSON.stringify(v)} (a string)` : String(v);
}
