/**
 * The verification memo (src/policy/verification-memo.ts) may only ever give the answer a fresh
 * verification would give: same text and same keys, or verify again.
 */
import { describe, expect, it } from 'vitest';
import { generateSigningKey, ProtocolError, type NodeKeyResolver, type PublicSigningJwk } from '@passerelle/protocol';
import { VerificationMemo } from '../src/policy/verification-memo.js';

const NODE = 'https://accueil.example.be';

describe('VerificationMemo', () => {
  it('verifies a text once while its keys resolve the same', async () => {
    const key = await generateSigningKey();
    const resolve: NodeKeyResolver = async (_node, kid) => (kid === key.kid ? key.publicJwk : undefined);
    const memo = new VerificationMemo();
    let runs = 0;
    const verify = async (r: NodeKeyResolver) => {
      runs += 1;
      return { ok: (await r(NODE, key.kid, new Date('2026-01-01T00:00:00Z'))) !== undefined };
    };
    expect(await memo.get('consent', 'jws-1', resolve, verify)).toEqual({ ok: true });
    expect(await memo.get('consent', 'jws-1', resolve, verify)).toEqual({ ok: true });
    expect(runs).toBe(1);
    // Another text, or the same text as another kind of object, is another entry.
    await memo.get('consent', 'jws-2', resolve, verify);
    await memo.get('agreement', 'jws-1', resolve, verify);
    expect(runs).toBe(3);
  });

  it('verifies again when a key it used resolves differently (rotation, revocation)', async () => {
    const first = await generateSigningKey();
    const second = await generateSigningKey();
    let current: PublicSigningJwk | undefined = first.publicJwk;
    const resolve: NodeKeyResolver = async () => current;
    const memo = new VerificationMemo();
    let runs = 0;
    const verify = async (r: NodeKeyResolver) => {
      runs += 1;
      const jwk = await r(NODE, 'kid-1', new Date('2026-01-01T00:00:00Z'));
      if (!jwk) throw new ProtocolError('KEY_UNKNOWN');
      return jwk.x;
    };
    expect(await memo.get('consent', 'jws', resolve, verify)).toBe(first.publicJwk.x);
    current = second.publicJwk;
    expect(await memo.get('consent', 'jws', resolve, verify)).toBe(second.publicJwk.x);
    current = undefined;
    await expect(memo.get('consent', 'jws', resolve, verify)).rejects.toMatchObject({ code: 'KEY_UNKNOWN' });
    expect(runs).toBe(3);
  });

  it('never remembers a failure, and forgets the oldest entries beyond its capacity', async () => {
    const memo = new VerificationMemo(2);
    const resolve: NodeKeyResolver = async () => undefined;
    let runs = 0;
    const failing = async () => {
      runs += 1;
      throw new ProtocolError('SIGNATURE_INVALID');
    };
    await expect(memo.get('consent', 'bad', resolve, failing)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    await expect(memo.get('consent', 'bad', resolve, failing)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    expect(runs).toBe(2);

    let verified = 0;
    const ok = async () => {
      verified += 1;
      return true;
    };
    for (const text of ['a', 'b', 'c']) await memo.get('consent', text, resolve, ok);
    await memo.get('consent', 'c', resolve, ok);
    await memo.get('consent', 'b', resolve, ok);
    expect(verified).toBe(3);
    await memo.get('consent', 'a', resolve, ok);
    expect(verified).toBe(4);
  });
});
