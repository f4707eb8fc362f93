import { describe, expect, it } from 'vitest';
import { b64u, fromB64u, fromB64uText, fromUtf8, parseJson, sha256Js, sha256Sync, sha256Text, sha256b64uText, utf8, ProtocolError, MAX_JSON_DEPTH } from '../src/index.js';

describe('base64url', () => {
  it('round-trips every length and refuses padding, other alphabets and stray bits', () => {
    for (let n = 0; n < 70; n++) {
      const bytes = crypto.getRandomValues(new Uint8Array(n));
      expect(fromB64u(b64u(bytes))).toEqual(bytes);
    }
    for (const bad of ['AA==', 'A+/A', 'AB', 'AAB', 'A', 'AA AA']) {
      expect(() => fromB64u(bad), bad).toThrow(ProtocolError);
    }
    expect(fromB64u('AA')).toEqual(new Uint8Array([0]));
    expect(fromB64u('AAE')).toEqual(new Uint8Array([0, 1]));
  });
});

describe.each([
  ['sha256Js', sha256Js],
  ['sha256Sync', sha256Sync],
])('%s', (_name, sha256Sync) => {
  it('matches the FIPS 180-4 examples and WebCrypto on random inputs', async () => {
    const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    expect(hex(sha256Sync(utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(sha256Sync(utf8('')))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(sha256Sync(utf8('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
    for (const n of [1, 55, 56, 63, 64, 65, 119, 120, 1000, 4097]) {
      const data = crypto.getRandomValues(new Uint8Array(n));
      expect(sha256Sync(data)).toEqual(new Uint8Array(await crypto.subtle.digest('SHA-256', data)));
    }
  });
});

describe('fromUtf8', () => {
  it('decodes valid UTF-8 (a genuine U+FFFD included) and refuses every invalid sequence', () => {
    for (const text of ['', 'abc', 'é€😀', '\uFFFD', 'a\uFFFDb']) expect(fromUtf8(utf8(text))).toBe(text);
    const invalid = [[0xc3], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xff], [0x61, 0xe2, 0x82]];
    for (const bytes of invalid) {
      expect(() => fromUtf8(new Uint8Array(bytes)), bytes.join(',')).toThrow(expect.objectContaining({ code: 'MALFORMED', message: 'Invalid UTF-8' }));
    }
    // A leading byte-order mark is kept by both decoders (the strict one runs when U+FFFD appears),
    // so a JSON text behind a BOM is refused the same way whichever decodes it.
    expect(fromUtf8(utf8('\uFEFF{}'))).toBe('\uFEFF{}');
    expect(fromUtf8(utf8('\uFEFF\uFFFD'))).toBe('\uFEFF\uFFFD');
    expect(() => parseJson(fromUtf8(utf8('\uFEFF{}')))).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
    // A view into a larger buffer decodes only its own bytes.
    const big = utf8('xxhelloxx');
    expect(fromUtf8(big.subarray(2, 7))).toBe('hello');
  });
});

describe('fromB64uText', () => {
  it('decodes strict base64url of strict UTF-8, and refuses either being lenient', () => {
    for (const text of ['', 'a', 'é', '\uFFFD literal replacement character', '😀'.repeat(50)]) {
      expect(fromB64uText(b64u(utf8(text)))).toBe(text);
    }
    const invalidUtf8 = b64u(new Uint8Array([0x61, 0xc3, 0x28]));
    expect(() => fromB64uText(invalidUtf8)).toThrow(expect.objectContaining({ code: 'MALFORMED', message: 'Invalid UTF-8' }));
    for (const bad of ['YQ==', 'YR', 'Y Q', 'Y+Q', 'A']) expect(() => fromB64uText(bad), bad).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
  });
});

describe('text digests', () => {
  it('sha256Text and sha256b64uText hash the UTF-8 bytes, on both sides of the native threshold', async () => {
    for (const n of [0, 1, 55, 56, 200, 511, 512, 513, 5000]) {
      for (const text of ['a'.repeat(n), 'é€😀'.repeat(n)]) {
        const expected = new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(text) as Uint8Array<ArrayBuffer>));
        expect(sha256Text(text), `${n}`).toEqual(expected);
        expect(sha256b64uText(text), `${n}`).toBe(b64u(expected));
      }
    }
  });
});

describe('parseJson', () => {
  const nested = (depth: number, open = '[', close = ']') => open.repeat(depth) + close.repeat(depth);
  it('bounds nesting: depth 32 parses, 33 is TOO_LARGE whether or not the text is also malformed', () => {
    expect(() => parseJson(nested(MAX_JSON_DEPTH))).not.toThrow();
    expect(() => parseJson(nested(MAX_JSON_DEPTH + 1))).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }));
    expect(() => parseJson(`{"a":${nested(MAX_JSON_DEPTH)}}`)).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }));
    expect(() => parseJson(`[${'{"a":'.repeat(MAX_JSON_DEPTH)}1${'}'.repeat(MAX_JSON_DEPTH)}]`)).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }));
    expect(() => parseJson(`${nested(MAX_JSON_DEPTH + 1)},`)).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }));
    expect(() => parseJson(nested(100_000))).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }));
    // Brackets inside strings do not count.
    expect(parseJson('[[["a]]]"]]]')).toEqual([[['a]]]']]]);
    expect(parseJson(JSON.stringify(['['.repeat(100)]))).toEqual(['['.repeat(100)]);
    expect(() => parseJson('{bad')).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
  });
});
