import { gzipSync } from 'node:zlib';
import { DatasetError } from '../src/index';
import { readTar } from '../src/tar';
import { datasetErrorCode, makeTar, type TarItem } from './fixtures';

const bytes = (s: string) => Buffer.from(s);

function error(f: () => unknown): DatasetError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

/** Rewrites the size field of the header at `off` and fixes its checksum, as a hostile writer would. */
function withSizeField(tar: Buffer, off: number, size: string): Buffer {
  const out = Buffer.from(tar);
  out.fill(0, off + 124, off + 136);
  out.write(size, off + 124, 'latin1');
  out.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = off; i < off + 512; i++) sum += out[i];
  out.write(sum.toString(8).padStart(6, '0') + '\0 ', off + 148);
  return out;
}

const code = datasetErrorCode;

describe('readTar', () => {
  it('reads files, directories, pax long names and in-archive links, gzipped or not', () => {
    const long = 'd/' + 'x'.repeat(150) + '.txt';
    const tar = makeTar([
      { name: 'd/', type: '5' },
      { name: './d/a.txt', data: bytes('hello') },
      { name: 'ignored-name', pax: { path: long }, data: bytes('long') },
      { name: 'd/hard', type: '1', linkname: 'd/a.txt' },
      { name: 'd/sub/sym', type: '2', linkname: '../a.txt' },
    ]);
    for (const input of [tar, gzipSync(tar)]) {
      const e = readTar(input, 't.tar');
      const files = Object.fromEntries(
        e.filter((x) => x.type === 'file').map((x) => [x.name, Buffer.from(x.data).toString()]),
      );
      expect(files).toEqual({ 'd/a.txt': 'hello', [long]: 'long', 'd/hard': 'hello', 'd/sub/sym': 'hello' });
      expect(e.some((x) => x.type === 'directory' && x.name === 'd')).toBe(true);
    }
  });

  it('reads a tar whose first name starts like a bzip2 or xz stream as a tar', () => {
    for (const name of ['BZh91AY&SY', 'BZh9']) {
      const entries = readTar(makeTar([{ name, data: Buffer.from('x') }]), 'odd.tar');
      expect(entries.map((e) => e.name)).toEqual([name]);
    }
  });

  it('rejects absolute paths and .. components (tar-slip)', () => {
    expect(code(() => readTar(makeTar([{ name: '/etc/passwd', data: bytes('x') }]), 't'))).toBe(
      'unsafe-archive',
    );
    expect(code(() => readTar(makeTar([{ name: 'a/../../evil', data: bytes('x') }]), 't'))).toBe(
      'unsafe-archive',
    );
    expect(
      code(() => readTar(makeTar([{ name: 'ok', pax: { path: '../evil' }, data: bytes('x') }]), 't')),
    ).toBe('unsafe-archive');
    expect(code(() => readTar(makeTar([{ name: 'C:/win', data: bytes('x') }]), 't'))).toBe('unsafe-archive');
  });

  it('reads past a symbolic link to a folder of the archive: its files are read under their own names', () => {
    const data = bytes('x');
    for (const items of [
      [
        { name: 'real/', type: '5' as const },
        { name: 'real/a', data },
        { name: 'mnist', type: '2' as const, linkname: 'real' },
      ],
      // No directory entry for the target: a folder all the same, as its files show.
      [
        { name: 'v2/train/a', data },
        { name: 'data/train', type: '2' as const, linkname: '../v2/train/' },
      ],
    ]) {
      const entries = readTar(makeTar(items), 't');
      expect(entries.filter((e) => e.type === 'file').map((e) => e.name)).toEqual([
        items[items.length - 2].name,
      ]);
    }
    // A link to a folder that leaves the archive, or to nothing in it, is still refused.
    for (const [file, link, target] of [
      ['a/b', 'c', '../a'],
      ['ab/c', 'l', 'a'],
    ])
      expect(
        code(() =>
          readTar(
            makeTar([
              { name: file, data },
              { name: link, type: '2', linkname: target },
            ]),
            't',
          ),
        ),
      ).toBe('unsafe-archive');
  });

  it('rejects symlinks and hardlinks that leave the archive, and device entries', () => {
    expect(code(() => readTar(makeTar([{ name: 'a', type: '2', linkname: '/etc/passwd' }]), 't'))).toBe(
      'unsafe-archive',
    );
    expect(code(() => readTar(makeTar([{ name: 'd/a', type: '2', linkname: '../../x' }]), 't'))).toBe(
      'unsafe-archive',
    );
    expect(code(() => readTar(makeTar([{ name: 'a', type: '1', linkname: '../x' }]), 't'))).toBe(
      'unsafe-archive',
    );
    expect(code(() => readTar(makeTar([{ name: 'a', type: '2', linkname: 'missing' }]), 't'))).toBe(
      'unsafe-archive',
    );
    for (const [type, kind] of [
      ['3', 'character device'],
      ['4', 'block device'],
      ['6', 'FIFO'],
    ] as const) {
      expect(() => readTar(makeTar([{ name: 'd/dev', type }]), 't')).toThrow(
        expect.objectContaining({
          code: 'unsafe-archive',
          message: `tar entry d/dev is a ${kind}; a data set archive holds only files, folders and links: make the archive again without it; file: t; found: d/dev`,
        }),
      );
    }
  });

  it('skips metadata-only entries (volume label, Solaris ACL and attributes) and reads a GNU dumpdir as a folder', () => {
    const data = bytes('pixels');
    const entries = readTar(
      makeTar([
        { name: 'backup of ../../2026', type: 'V' },
        { name: 'acl', type: 'A', data: bytes('user::rw-') },
        { name: 'xattr', type: 'E', data: bytes('k=v') },
        { name: 'd', type: 'D', data: bytes('Ya\0\0') },
        { name: 'd/a', data },
      ]),
      't',
    );
    expect(entries.map((e) => [e.name, e.type, Buffer.from(e.data).toString()])).toEqual([
      ['d', 'directory', ''],
      ['d/a', 'file', 'pixels'],
    ]);
    // Solaris's 'X' is a pax header under its older letter: its path names the next entry.
    const named = readTar(
      makeTar([
        { name: 'ignored', type: 'X', data: bytes('20 path=d/long-name\n') },
        { name: 'x', data },
      ]),
      't',
    );
    expect(named.map((e) => e.name)).toEqual(['d/long-name']);
  });

  it('names entries it cannot restore (sparse, multi-volume, unknown) as corrupt-archive with the fix', () => {
    const cases: [string, string][] = [
      [
        'S',
        "has type 'S', a GNU sparse file (tar --sparse), which this reader does not expand: make the archive again without --sparse",
      ],
      [
        'M',
        "has type 'M', the rest of a file begun in the previous volume of a multi-volume archive: join the volumes into one archive",
      ],
      ['Q', "has type 'Q', which no tar format defines"],
    ];
    for (const [type, message] of cases)
      expect(() =>
        readTar(makeTar([{ name: 'd/a', type: type as TarItem['type'], data: bytes('x') }]), 't'),
      ).toThrow(
        expect.objectContaining({
          code: 'corrupt-archive',
          message: `tar entry d/a ${message}; file: t; found: d/a`,
        }),
      );
  });

  it('caps the total size, including what links add', () => {
    const big = new Uint8Array(4096);
    expect(code(() => readTar(makeTar([{ name: 'a', data: big }]), 't', { maxTotalBytes: 4000 }))).toBe(
      'too-large',
    );
    const tar = makeTar([
      { name: 'a', data: big },
      ...Array.from({ length: 5 }, (_, i) => ({ name: `l${i}`, type: '1' as const, linkname: 'a' })),
    ]);
    expect(code(() => readTar(tar, 't', { maxTotalBytes: 5 * 4096 }))).toBe('too-large');
    expect(readTar(tar, 't', { maxTotalBytes: 6 * 4096 }).length).toBe(6);
    const symlinked = makeTar([
      { name: 'a', data: big },
      ...Array.from({ length: 5 }, (_, i) => ({ name: `s${i}`, type: '2' as const, linkname: 'a' })),
    ]);
    expect(code(() => readTar(symlinked, 't', { maxTotalBytes: 5 * 4096 }))).toBe('too-large');
    expect(readTar(symlinked, 't', { maxTotalBytes: 6 * 4096 }).length).toBe(6);
    // A gzip bomb stops at the cap instead of filling memory.
    expect(
      code(() =>
        readTar(gzipSync(makeTar([{ name: 'z', data: new Uint8Array(1 << 20) }])), 't', {
          maxTotalBytes: 1000,
        }),
      ),
    ).toBe('too-large');
  });

  it('rejects truncated archives and corrupt headers', () => {
    const tar = makeTar([{ name: 'a', data: new Uint8Array(2000) }]);
    expect(code(() => readTar(tar.subarray(0, 1024), 't'))).toBe('truncated');
    expect(code(() => readTar(tar.subarray(0, 512 * 5), 't'))).toBe('truncated');
    const bad = Buffer.from(tar);
    bad[10] ^= 0xff;
    expect(code(() => readTar(bad, 't'))).toBe('corrupt-archive');
    const gz = gzipSync(tar);
    expect(code(() => readTar(gz.subarray(0, gz.length - 10), 't'))).toBe('truncated');
  });

  it('says an archive cut short is cut short, and to replace it', () => {
    const tar = makeTar([{ name: 'a', data: new Uint8Array(2000) }]);
    for (const cut of [tar.subarray(0, 1024), tar.subarray(0, 512 * 5)])
      expect(error(() => readTar(cut, 'x.tar')).message).toMatch(
        /^tar (entry of 2000 bytes runs past|archive has no end-of-archive block).*: the archive is cut short \(an interrupted download or copy\); replace it with a complete copy/,
      );
  });

  it('says a file shorter than one tar header is no archive, or one cut in its first block', () => {
    const tar = makeTar([{ name: 'a', data: new Uint8Array(2000) }]);
    for (const [short, bytes] of [
      [new TextEncoder().encode('hi\n'), 'is 3'],
      [tar.subarray(0, 300), 'is 300'],
      [gzipSync(new TextEncoder().encode('not a tar')), 'unzips to 9'],
    ] as const) {
      const e = error(() => readTar(short, 'x.tar'));
      expect(e.code).toBe('truncated');
      expect(e.message).toMatch(
        new RegExp(
          `^this file ${bytes} bytes, shorter than one tar header \\(512 bytes\\): it is not a \\.tar or \\.tar\\.gz archive, ` +
            'or one cut short in its first block',
        ),
      );
    }
  });

  it.each(['-1536', '-1', '1e3', '0x10', ' 16', '16 ', '1.5', '99999999999999999999'])(
    'refuses the pax size %j as corrupt-archive naming the archive and the entry (no hang)',
    (size) => {
      const tar = makeTar([{ name: 'd/a.bin', pax: { size }, data: new Uint8Array(2048) }]);
      const e = error(() => readTar(tar, 'x.tar'));
      expect(e.code).toBe('corrupt-archive');
      expect(e.file).toBe('x.tar:d/a.bin');
      expect(e.found).toBe(JSON.stringify(size));
      expect(e.message).toBe(
        'bad size in pax extended header: it must be decimal digits; the archive is damaged or not a tar file; ' +
          `file: x.tar:d/a.bin; found: ${JSON.stringify(size)}`,
      );
    },
  );

  it('takes a decimal pax size over the ustar field (an empty one deletes it), and names the entry when it runs past the end', () => {
    const ok = makeTar([
      { name: 'a', pax: { size: '3' }, data: bytes('abc') },
      { name: 'b', data: bytes('xy') },
      { name: 'c', pax: { size: '' }, data: bytes('empty value: the ustar size counts') },
    ]);
    expect(readTar(ok, 't').map((e) => [e.name, Buffer.from(e.data).toString()])).toEqual([
      ['a', 'abc'],
      ['b', 'xy'],
      ['c', 'empty value: the ustar size counts'],
    ]);
    const long = makeTar([{ name: 'a', pax: { size: '4096' }, data: bytes('abc') }]);
    const e = error(() => readTar(long, 't'));
    expect(e.code).toBe('truncated');
    expect(e.file).toBe('t:a');
    expect(e.message).toBe(
      `tar entry of 4096 bytes runs past the end of the archive: the archive is cut short (an interrupted download or copy); replace it with a complete copy; file: t:a; expected: ${512 + 512 + 512 + 4096} bytes; found: ${long.length} bytes`,
    );
  });

  it.each(['00000000089', '-0000000001', '0x000000010', '1e3'])(
    'refuses the ustar size field %j (octal digits only) naming the entry',
    (size) => {
      const tar = withSizeField(makeTar([{ name: 'd/a.bin', data: bytes('abc') }]), 0, size);
      const e = error(() => readTar(tar, 'x.tar'));
      expect(e.code).toBe('corrupt-archive');
      expect(e.file).toBe('x.tar:d/a.bin');
      expect(e.found).toBe(JSON.stringify(size));
    },
  );
});
