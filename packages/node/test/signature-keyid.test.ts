import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { claimedKeyid, parsedFieldKeyid, simpleFieldKeyid, UNDECIDED } from '../src/http/signature-keyid.js';

describe('claimed keyid', () => {
  it('reads the keyid of the pas signature', () => {
    expect(claimedKeyid('pas=("@method" "@target-uri" "content-digest" "content-type");created=1;keyid="abc";alg="ed25519";tag="passerelle"')).toBe('abc');
    expect(claimedKeyid('other=("@method");keyid="k1"')).toBe('k1');
  });
  it('returns nothing for absent, malformed or oversized input', () => {
    expect(claimedKeyid(undefined)).toBeUndefined();
    expect(claimedKeyid('pas=("@method");keyid=abc')).toBeUndefined();
    expect(claimedKeyid('a=();keyid="x", b=();keyid="y"')).toBeUndefined();
    expect(claimedKeyid(`pas=();keyid="${'x'.repeat(5000)}"`)).toBeUndefined();
    expect(claimedKeyid('pas=(')).toBeUndefined();
    expect(claimedKeyid('pas=();keyid="a";keyid="b"')).toBeUndefined();
  });
  it('reads the usual field shape without the structured-field parser', () => {
    expect(simpleFieldKeyid('pas=("@method" "@target-uri");created=1700000000;keyid="k-1";alg="ed25519";tag="passerelle"')).toBe('k-1');
    expect(simpleFieldKeyid('pas=();keyid=token')).toBeUndefined();
    // Shapes it leaves to the parser: two signatures, escapes, extra spaces, decimals, byte sequences.
    for (const field of ['a=();keyid="x", b=();keyid="y"', 'pas=();keyid="a\\"b"', 'pas=( "x");keyid="k"', 'pas=();v=1.5;keyid="k"', 'pas=();v=:YQ==:;keyid="k"']) {
      expect(simpleFieldKeyid(field)).toBe(UNDECIDED);
    }
  });
  it('answers as the structured-field parser does whenever it answers at all (generated fields)', () => {
    // Mostly well-formed pieces, some hostile ones: both paths must be exercised.
    const str = fc.oneof(
      { weight: 4, arbitrary: fc.stringMatching(/^[a-z@ -]{0,6}$/).map((s) => `"${s}"`) },
      { weight: 1, arbitrary: fc.stringMatching(/^[a-z@"\\ ;,=()-]{0,6}$/).map((s) => `"${s}"`) },
    );
    const value = fc.oneof(
      str,
      fc.stringMatching(/^[a-z0-9.-]{1,6}$/),
      fc.integer({ min: -1e15, max: 1e16 }).map(String),
      fc.constantFrom('?0', '?1', '?2', '1.5', '1.', ':YQ==:', '*tok', 'Tok/x:1', ''),
    );
    const semi = fc.constantFrom(';', ';', ';', ';', ';', '; ', ';;');
    const param = fc.oneof(
      { weight: 2, arbitrary: fc.tuple(fc.constant('keyid'), str, semi) },
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom('keyid', 'created', 'alg', 'tag', 'Key', '*k', 'k_1', ''), fc.option(value), semi) },
    );
    const field = fc
      .tuple(
        fc.constantFrom('pas', 'other', '*x', 'A', 'sig1', ''),
        fc.array(str, { maxLength: 4 }),
        fc.constantFrom(' ', ' ', ' ', ' ', '  '),
        fc.array(param, { maxLength: 4 }),
        fc.constantFrom('', '', '', '', '', '', ', b=()', ' ', ',', '"', ')'),
      )
      .map(([label, items, sep, params, tail]) => `${label}=(${items.join(sep)})${params.map(([k, v, semi]) => `${semi}${k}${v === null ? '' : `=${v}`}`).join('')}${tail}`);
    let decided = 0;
    let read = 0;
    fc.assert(
      fc.property(field, (f) => {
        const fast = simpleFieldKeyid(f);
        if (fast !== UNDECIDED) {
          decided += 1;
          if (fast !== undefined) read += 1;
          expect(fast).toBe(parsedFieldKeyid(f));
        }
        expect(claimedKeyid(f)).toBe(parsedFieldKeyid(f));
      }),
      { numRuns: 3000, seed: 9421 },
    );
    // The comparison must exercise the fast path (reading a keyid and finding none), not only the fallback.
    expect(decided).toBeGreaterThan(150);
    expect(read).toBeGreaterThan(20);
  });
});
