import { beforeAll, describe, expect, it } from 'vitest';
import {
  CHECKPOINT_TYP,
  Checkpoint,
  MerkleTree,
  assertCheckpointIncludes,
  assertConsistentCheckpoints,
  buildCheckpoint,
  decodeProof,
  emptyRoot,
  encodeProof,
  leafHash,
  signCheckpoint,
  verifyCheckpoint,
  type Checkpoint as CheckpointType,
} from '../src/audit/index.js';
import { b64u, b64uJson, generateSigningKey, signCompact, utf8, type ErrorCode, type PublicSigningJwk, type SigningKeyPair } from '../src/index.js';

const ORIGIN = 'https://fedasil.example.be';
const OTHER = 'https://reintegration.example.sn';

const tree = new MerkleTree(Array.from({ length: 300 }, (_, i) => leafHash(utf8(`event ${i}`))));

function at(seconds: number): Date {
  return new Date(Date.UTC(2026, 4, 1, 10, 0, seconds));
}

function checkpointAt(size: number, seconds: number, origin = ORIGIN): CheckpointType {
  return buildCheckpoint({ origin, size, root: tree.root(size), at: at(seconds) });
}

async function rejects(p: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<void> {
  const run = typeof p === 'function' ? Promise.resolve().then(p) : p;
  await expect(run).rejects.toMatchObject({ name: 'ProtocolError', code });
}

describe('checkpoint schema', () => {
  it('builds canonical checkpoints and refuses malformed ones', () => {
    const cp = checkpointAt(42, 0);
    expect(cp).toEqual({ origin: ORIGIN, size: 42, root: b64u(tree.root(42)), at: '2026-05-01T10:00:00Z' });
    expect(Checkpoint.safeParse({ ...cp, extra: 1 }).success).toBe(false);
    expect(Checkpoint.safeParse({ ...cp, size: -1 }).success).toBe(false);
    expect(Checkpoint.safeParse({ ...cp, size: 1.5 }).success).toBe(false);
    expect(Checkpoint.safeParse({ ...cp, origin: 'https://x.example/path' }).success).toBe(false);
    expect(Checkpoint.safeParse({ ...cp, at: '2026-05-01T10:00:00+02:00' }).success).toBe(false);
    expect(Checkpoint.safeParse({ ...cp, root: cp.root.slice(0, 42) }).success).toBe(false);
    // Same 32 bytes spelled with stray low bits in the last character: not canonical.
    const last = cp.root.at(-1)!;
    const sibling = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const stray = sibling[(sibling.indexOf(last) & ~3) + 1]!;
    expect(Checkpoint.safeParse({ ...cp, root: cp.root.slice(0, 42) + stray }).success).toBe(false);
  });

  it('an empty log must carry the empty-tree root', () => {
    expect(buildCheckpoint({ origin: ORIGIN, size: 0, root: emptyRoot(), at: at(0) }).root).toBe(b64u(emptyRoot()));
    expect(() => buildCheckpoint({ origin: ORIGIN, size: 0, root: tree.root(1), at: at(0) })).toThrow(
      expect.objectContaining({ code: 'SCHEMA_INVALID' }),
    );
    expect(() => buildCheckpoint({ origin: ORIGIN, size: 1, root: new Uint8Array(31), at: at(0) })).toThrow(
      expect.objectContaining({ code: 'SCHEMA_INVALID' }),
    );
  });
});

describe('signed checkpoints', () => {
  let key: SigningKeyPair;
  let other: SigningKeyPair;
  const resolver =
    (keys: Record<string, SigningKeyPair>) =>
    (node: string, kid: string): PublicSigningJwk | undefined => {
      const k = keys[node];
      return k && k.kid === kid ? k.publicJwk : undefined;
    };

  beforeAll(async () => {
    key = await generateSigningKey();
    other = await generateSigningKey();
  });

  it('round-trips and binds the key to the origin', async () => {
    const cp = checkpointAt(120, 5);
    const jws = await signCheckpoint(cp, key);
    const seen: [string, string, Date][] = [];
    const verified = await verifyCheckpoint(jws, (node, kid, when) => {
      seen.push([node, kid, when]);
      return node === ORIGIN && kid === key.kid ? key.publicJwk : undefined;
    });
    expect(verified).toEqual(cp);
    expect(seen).toEqual([[ORIGIN, key.kid, at(5)]]);
    expect(await verifyCheckpoint(jws, resolver({ [ORIGIN]: key }), { origin: ORIGIN })).toEqual(cp);

    // A checkpoint for another log, one signed by another node's key, or a key unknown for this origin.
    await rejects(verifyCheckpoint(jws, resolver({ [ORIGIN]: key }), { origin: OTHER }), 'AUDIT_CHECKPOINT_INVALID');
    await rejects(verifyCheckpoint(jws, resolver({ [OTHER]: key }), {}), 'AUDIT_CHECKPOINT_INVALID');
    const forged = await signCheckpoint(cp, other);
    await rejects(verifyCheckpoint(forged, resolver({ [ORIGIN]: key, [OTHER]: other })), 'AUDIT_CHECKPOINT_INVALID');
  });

  it('refuses tampering, other types and malformed payloads with AUDIT_CHECKPOINT_INVALID', async () => {
    const resolve = resolver({ [ORIGIN]: key });
    const jws = await signCheckpoint(checkpointAt(120, 5), key);
    const [h, , s] = jws.split('.') as [string, string, string];
    const grown = `${h}.${b64uJson({ ...checkpointAt(121, 5), root: b64u(tree.root(120)) })}.${s}`;
    await rejects(verifyCheckpoint(grown, resolve), 'AUDIT_CHECKPOINT_INVALID');
    const badSig = `${h}.${jws.split('.')[1]}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`;
    await expect(verifyCheckpoint(badSig, resolve)).rejects.toMatchObject({
      code: 'AUDIT_CHECKPOINT_INVALID',
      details: { reason: 'SIGNATURE_INVALID' },
    });
    const receiptTyped = await signCompact(checkpointAt(120, 5), key, 'passerelle-receipt+jwt');
    await expect(verifyCheckpoint(receiptTyped, resolve)).rejects.toMatchObject({
      code: 'AUDIT_CHECKPOINT_INVALID',
      details: { reason: 'WRONG_TYPE' },
    });
    const extra = await signCompact({ ...checkpointAt(120, 5), note: 'x' }, key, CHECKPOINT_TYP);
    await rejects(verifyCheckpoint(extra, resolve), 'AUDIT_CHECKPOINT_INVALID');
    const fakeEmpty = await signCompact({ ...checkpointAt(1, 5), size: 0 }, key, CHECKPOINT_TYP);
    await rejects(verifyCheckpoint(fakeEmpty, resolve), 'AUDIT_CHECKPOINT_INVALID');
    await rejects(verifyCheckpoint('not.a.jws', resolve), 'AUDIT_CHECKPOINT_INVALID');
    await rejects(verifyCheckpoint(jws.split('.').slice(0, 2).join('.'), resolve), 'AUDIT_CHECKPOINT_INVALID');
    await rejects(signCheckpoint({ ...checkpointAt(3, 5), size: -3 }, key), 'SCHEMA_INVALID');
  });

  it("passes the resolver's own failures through unchanged", async () => {
    const jws = await signCheckpoint(checkpointAt(7, 5), key);
    const outage = new Error('store down');
    await expect(
      verifyCheckpoint(jws, () => {
        throw outage;
      }),
    ).rejects.toBe(outage);
  });
});

describe('assertConsistentCheckpoints', () => {
  it('accepts a log that only grew', () => {
    for (const [m, n] of [[0, 0], [0, 5], [1, 2], [5, 5], [100, 300], [128, 256], [255, 256], [1, 300]] as const) {
      const older = checkpointAt(m, 0);
      const newer = checkpointAt(n, m === n ? 0 : 30);
      expect(() => assertConsistentCheckpoints(older, newer, tree.consistencyProof(m, n)), `${m}->${n}`).not.toThrow();
    }
    // Proofs as they travel in JSON.
    const wire = JSON.parse(JSON.stringify(encodeProof(tree.consistencyProof(17, 200)))) as unknown;
    expect(() => assertConsistentCheckpoints(checkpointAt(17, 0), checkpointAt(200, 9), decodeProof(wire))).not.toThrow();
  });

  it('a fork (same size, another root) and a shrunk log are AUDIT_LOG_INCONSISTENT', async () => {
    const forkTree = new MerkleTree([...Array.from({ length: 99 }, (_, i) => tree.leaf(i)), leafHash(utf8('rewritten'))]);
    const honest = checkpointAt(100, 0);
    const forked = buildCheckpoint({ origin: ORIGIN, size: 100, root: forkTree.root(), at: at(10) });
    await rejects(() => assertConsistentCheckpoints(honest, forked, []), 'AUDIT_LOG_INCONSISTENT');
    await rejects(() => assertConsistentCheckpoints(checkpointAt(150, 0), checkpointAt(120, 10), []), 'AUDIT_LOG_INCONSISTENT');
    // History rewritten below an older checkpoint: neither tree's proof links the two roots.
    const forkTree2 = new MerkleTree([...Array.from({ length: 60 }, (_, i) => leafHash(utf8(`other ${i}`))), ...Array.from({ length: 40 }, (_, i) => tree.leaf(60 + i))]);
    const rewritten = buildCheckpoint({ origin: ORIGIN, size: 100, root: forkTree2.root(), at: at(20) });
    await rejects(() => assertConsistentCheckpoints(checkpointAt(60, 0), rewritten, forkTree2.consistencyProof(60, 100)), 'AUDIT_PROOF_INVALID');
    await rejects(() => assertConsistentCheckpoints(checkpointAt(60, 0), rewritten, tree.consistencyProof(60, 100)), 'AUDIT_PROOF_INVALID');
  });

  it('a bad proof is AUDIT_PROOF_INVALID; mismatched pairs are AUDIT_CHECKPOINT_INVALID', async () => {
    const proof = tree.consistencyProof(100, 300);
    const older = checkpointAt(100, 0);
    const newer = checkpointAt(300, 30);
    const damaged = proof.map((h, i) => (i === 1 ? h.map((b, j) => (j === 0 ? b ^ 1 : b)) : h));
    await rejects(() => assertConsistentCheckpoints(older, newer, damaged), 'AUDIT_PROOF_INVALID');
    await rejects(() => assertConsistentCheckpoints(older, newer, proof.slice(1)), 'AUDIT_PROOF_INVALID');
    await rejects(() => assertConsistentCheckpoints(older, newer, []), 'AUDIT_PROOF_INVALID');
    await rejects(() => assertConsistentCheckpoints(checkpointAt(5, 0), checkpointAt(5, 1), [tree.root(5)]), 'AUDIT_PROOF_INVALID');
    await rejects(() => assertConsistentCheckpoints(older, checkpointAt(300, 30, OTHER), proof), 'AUDIT_CHECKPOINT_INVALID');
    await rejects(() => assertConsistentCheckpoints(newer, checkpointAt(300, 0), []), 'AUDIT_CHECKPOINT_INVALID');
    await rejects(() => assertConsistentCheckpoints({ ...older, root: 'x' }, newer, proof), 'AUDIT_CHECKPOINT_INVALID');
    expect(() => decodeProof(['not base64url!'])).toThrow(expect.objectContaining({ code: 'AUDIT_PROOF_INVALID' }));
    expect(() => decodeProof('x')).toThrow(expect.objectContaining({ code: 'AUDIT_PROOF_INVALID' }));
  });
});

describe('assertCheckpointIncludes', () => {
  it('checks a leaf against the checkpoint it was logged under', async () => {
    const cp = checkpointAt(300, 0);
    const leaf = tree.leaf(123);
    expect(() => assertCheckpointIncludes(cp, leaf, 123, tree.inclusionProof(123))).not.toThrow();
    await rejects(() => assertCheckpointIncludes(cp, leaf, 124, tree.inclusionProof(123)), 'AUDIT_PROOF_INVALID');
    await rejects(() => assertCheckpointIncludes(checkpointAt(299, 0), leaf, 123, tree.inclusionProof(123)), 'AUDIT_PROOF_INVALID');
    await rejects(() => assertCheckpointIncludes(cp, leafHash(utf8('never logged')), 123, tree.inclusionProof(123)), 'AUDIT_PROOF_INVALID');
  });
});
