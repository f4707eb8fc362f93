import { describe, expect, it } from 'vitest';
import { utf8, type ErrorCode } from '@passerelle/protocol';
import { contentDigest, verifyContentDigest } from '../src/http/content-digest.js';

// RFC 9530 §2 example body and its sha-256 member.
const RFC_BODY = utf8('{"hello": "world"}');
const RFC_DIGEST = 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:';

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: ErrorCode }).code;
  }
  return undefined;
}

describe('contentDigest', () => {
  it('reproduces the RFC 9530 example', () => {
    expect(contentDigest(RFC_BODY)).toBe(RFC_DIGEST);
  });

  it('digests the empty body', () => {
    expect(contentDigest(new Uint8Array())).toBe('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:');
  });
});

describe('verifyContentDigest', () => {
  it('accepts a matching digest, with or without other algorithms and parameters', () => {
    expect(() => verifyContentDigest(RFC_DIGEST, RFC_BODY)).not.toThrow();
    expect(() => verifyContentDigest(`  ${RFC_DIGEST}  `, RFC_BODY)).not.toThrow();
    expect(() => verifyContentDigest(`sha-512=:AAAA:, ${RFC_DIGEST}`, RFC_BODY)).not.toThrow();
    expect(() => verifyContentDigest(`${RFC_DIGEST},unixsum=:AAAA:`, RFC_BODY)).not.toThrow();
    expect(() => verifyContentDigest(`${RFC_DIGEST};note="x"`, RFC_BODY)).not.toThrow();
  });

  it('round-trips contentDigest', () => {
    const body = utf8('x'.repeat(10_000));
    expect(() => verifyContentDigest(contentDigest(body), body)).not.toThrow();
  });

  it.each<[string, string | undefined, Uint8Array, ErrorCode]>([
    ['absent field', undefined, RFC_BODY, 'REQUEST_UNAUTHENTICATED'],
    ['empty field', '  ', RFC_BODY, 'REQUEST_UNAUTHENTICATED'],
    ['another body', RFC_DIGEST, utf8('{"hello":"world"}'), 'CONTENT_DIGEST_MISMATCH'],
    ['digest of the empty body', contentDigest(new Uint8Array()), RFC_BODY, 'CONTENT_DIGEST_MISMATCH'],
    ['only another algorithm', 'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:', RFC_BODY, 'CONTENT_DIGEST_MISMATCH'],
    ['upper-case algorithm key', RFC_DIGEST.replace('sha-256', 'SHA-256'), RFC_BODY, 'MALFORMED'],
    ['bare base64 value', 'sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=', RFC_BODY, 'MALFORMED'],
    ['string value', 'sha-256="X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="', RFC_BODY, 'MALFORMED'],
    ['unpadded base64', 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:', RFC_BODY, 'MALFORMED'],
    ['non-canonical trailing bits', 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPF=:', RFC_BODY, 'MALFORMED'],
    ['base64url alphabet', 'sha-256=:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=:', RFC_BODY, 'MALFORMED'],
    ['16-byte value', 'sha-256=:AAAAAAAAAAAAAAAAAAAAAA==:', RFC_BODY, 'MALFORMED'],
    ['inner list', `sha-256=(${RFC_DIGEST.slice(8)})`, RFC_BODY, 'MALFORMED'],
    ['duplicate member', `${RFC_DIGEST}, ${RFC_DIGEST}`, RFC_BODY, 'MALFORMED'],
    ['trailing comma', `${RFC_DIGEST},`, RFC_BODY, 'MALFORMED'],
    ['space separator', `${RFC_DIGEST} sha-512=:AAAA:`, RFC_BODY, 'MALFORMED'],
    ['unterminated byte sequence', 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=', RFC_BODY, 'MALFORMED'],
    ['non-ASCII', `${RFC_DIGEST}, é=?1`, RFC_BODY, 'MALFORMED'],
    ['over-long field', `${RFC_DIGEST}, pad="${'a'.repeat(2000)}"`, RFC_BODY, 'TOO_LARGE'],
  ])('rejects %s', (_name, header, body, code) => {
    expect(codeOf(() => verifyContentDigest(header, body))).toBe(code);
  });
});
