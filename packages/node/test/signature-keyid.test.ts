import { describe, expect, it } from 'vitest';
import { claimedKeyid } from '../src/http/signature-keyid.js';

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
  });
});
