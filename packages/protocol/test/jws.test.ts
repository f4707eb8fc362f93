import { describe, expect, it } from 'vitest';
import { generateSigningKey, signCompact, verifyCompact, verifyCompactWithNoble, signGeneral, verifyGeneral, ProtocolError } from '../src/index.js';

describe('jws', () => {
  it('signs and verifies with both verifiers', async () => {
    const k = await generateSigningKey();
    const t = await signCompact({ a: 1 }, k, 'test+jwt');
    const v = await verifyCompact(t, 'test+jwt', () => k.publicJwk);
    expect(v.payload).toEqual({ a: 1 });
    expect(await verifyCompactWithNoble(t, k.publicJwk)).toBe(true);
    // Change the signature's first character: all six of its bits are signature bits, so the token
    // always differs (editing the last ones left it unchanged when the signature ended in 'BA').
    const dot = t.lastIndexOf('.');
    const bad = `${t.slice(0, dot + 1)}${t[dot + 1] === 'A' ? 'B' : 'A'}${t.slice(dot + 2)}`;
    expect(bad).not.toBe(t);
    await expect(verifyCompact(bad, 'test+jwt', () => k.publicJwk)).rejects.toBeInstanceOf(ProtocolError);
    expect(await verifyCompactWithNoble(bad, k.publicJwk)).toBe(false);
  });
  it('general JWS needs every signature', async () => {
    const a = await generateSigningKey();
    const b = await generateSigningKey();
    const g = await signGeneral({ x: 'y' }, [a, b], 't+json');
    const keys = new Map([[a.kid, a.publicJwk], [b.kid, b.publicJwk]]);
    const v = await verifyGeneral(g, 't+json', (kid) => keys.get(kid));
    expect(v.kids).toEqual([a.kid, b.kid]);
    await expect(verifyGeneral(g, 't+json', (kid) => (kid === a.kid ? a.publicJwk : undefined))).rejects.toMatchObject({ code: 'KEY_UNKNOWN' });
  });
});
