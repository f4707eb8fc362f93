import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { b64u, fromB64u, sha256b64u } from '../src/encoding.js';
import { addSignatures, signGeneral, type GeneralJws } from '../src/jws.js';
import { generateEncryptionKey, generateSigningKey, type EncryptionKeyPair, type SigningKeyPair } from '../src/keys.js';
import { toTimestamp } from '../src/vocabulary.js';
import {
  NODE_DOCUMENT_TYP,
  NodeDocument,
  acceptNewer,
  createNodeDocument,
  currentEncryptionKey,
  keyValidAt,
  nodeFingerprints,
  nodeKeyEntry,
  resolveSigningKey,
  signingKeyAt,
  revokeKey,
  rotateNodeDocument,
  verifyNodeDocument,
  type NodeDocumentInput,
  type NodeKey,
  type VerifiedNodeDocument,
} from '../src/node-document.js';

const ID = 'https://accueil.example.be';
const T0 = new Date('2026-03-02T09:00:00Z');
const HOUR = 3600_000;
const DAY = 24 * HOUR;
const at = (offsetMs: number) => new Date(T0.getTime() + offsetMs);

let k1: SigningKeyPair;
let k2: SigningKeyPair;
let k3: SigningKeyPair;
let stranger: SigningKeyPair;
let e1: EncryptionKeyPair;
let e2: EncryptionKeyPair;

beforeAll(async () => {
  [k1, k2, k3, stranger] = await Promise.all([generateSigningKey(), generateSigningKey(), generateSigningKey(), generateSigningKey()]);
  [e1, e2] = await Promise.all([generateEncryptionKey(), generateEncryptionKey()]);
});

function input(keys: NodeKey[], overrides: Partial<NodeDocumentInput> = {}): NodeDocumentInput {
  return {
    id: ID,
    name: 'Accueil Transit Bruxelles (exemple)',
    country: 'BE',
    roles: ['reception-agency', 'return-counselling'],
    inbox: `${ID}/passerelle/inbox`,
    keys,
    messageTypes: ['referral', 'referral-response'],
    languages: ['fr', 'nl', 'en'],
    issuedAt: toTimestamp(T0),
    expiresAt: toTimestamp(at(30 * DAY)),
    ...overrides,
  };
}

const sigEntry = (k: SigningKeyPair, notBefore = T0) => nodeKeyEntry(k, { notBefore });
const encEntry = (k: EncryptionKeyPair, notBefore = T0) => nodeKeyEntry(k, { notBefore });

/** Signs an arbitrary payload as a node document, bypassing createNodeDocument's own checks. */
function rawSign(payload: Record<string, unknown>, keys: SigningKeyPair[], typ = NODE_DOCUMENT_TYP): Promise<GeneralJws> {
  return signGeneral(payload, keys, typ);
}

function decode(jws: GeneralJws): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(fromB64u(jws.payload))) as Record<string, unknown>;
}

async function v1(): Promise<{ jws: GeneralJws; verified: VerifiedNodeDocument }> {
  const jws = await createNodeDocument(input([sigEntry(k1), encEntry(e1)]), [k1]);
  return { jws, verified: await verifyNodeDocument(jws, { now: at(HOUR), pinnedFingerprints: [k1.kid] }) };
}

describe('node document: creation and verification', () => {
  it('round-trips through JSON with pinned fingerprint, digest and key lookups', async () => {
    const jws = await createNodeDocument(input([sigEntry(k1), sigEntry(k2), encEntry(e1)]), [k1, k2]);
    const wire = JSON.parse(JSON.stringify(jws)) as unknown;
    const result = await verifyNodeDocument(wire, { now: at(HOUR), pinnedFingerprints: [k2.kid], expectedId: ID });

    expect(result.document).toEqual({ ...input([sigEntry(k1), sigEntry(k2), encEntry(e1)]), version: 1 });
    expect(result.signers).toEqual([k1.kid, k2.kid]);
    expect(result.payloadDigest).toBe(await sha256b64u(jws.payload));
    expect(result.jws).toEqual(jws);
    expect(nodeFingerprints(result.document)).toEqual([k1.kid, k2.kid]);
    expect(resolveSigningKey(result.document, k1.kid, at(HOUR))).toEqual({ kty: 'OKP', crv: 'Ed25519', x: k1.publicJwk.x });
    expect(currentEncryptionKey(result.document, at(HOUR)).kid).toBe(e1.kid);
    expect(JSON.parse(new TextDecoder().decode(fromB64u(jws.signatures[0]!.protected)))).toEqual({
      alg: 'EdDSA',
      typ: NODE_DOCUMENT_TYP,
      kid: k1.kid,
    });
  });

  it('defaults version, issuedAt and expiry from the injected clock', async () => {
    const { issuedAt: _i, expiresAt: _e, ...rest } = input([sigEntry(k1)]);
    const jws = await createNodeDocument(rest, [k1], { now: at(5 * 1000) });
    const doc = decode(jws);
    expect(doc.version).toBe(1);
    expect(doc.issuedAt).toBe(toTimestamp(at(5 * 1000)));
    expect(Date.parse(doc.expiresAt as string)).toBeGreaterThan(at(29 * DAY).getTime());
  });

  it('refuses private key material in the schema, when creating and when verifying', async () => {
    const leaky = { ...sigEntry(k1), jwk: { ...k1.privateJwk } };
    const leakyDoc = { ...input([leaky as NodeKey]), version: 1 };
    expect(NodeDocument.safeParse(leakyDoc).success).toBe(false);
    expect(NodeDocument.safeParse({ ...input([sigEntry(k1)]), version: 1 }).success).toBe(true);
    await expect(createNodeDocument(input([leaky as NodeKey]), [k1])).rejects.toMatchObject({ code: 'KEY_INVALID' });
    const signed = await rawSign(leakyDoc, [k1]);
    await expect(verifyNodeDocument(signed, { now: at(HOUR) })).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });

  it('refuses a kid that is not the thumbprint of its key', async () => {
    const mislabelled = { ...sigEntry(k1), kid: k2.kid };
    await expect(createNodeDocument(input([mislabelled]), [k2])).rejects.toMatchObject({ code: 'KEY_INVALID' });
    const signed = await rawSign({ ...input([mislabelled]), version: 1 }, [k2]);
    await expect(verifyNodeDocument(signed, { now: at(HOUR) })).rejects.toMatchObject({ code: 'KEY_INVALID' });
    const encAsSig = { ...encEntry(e1), use: 'sig' };
    expect(NodeDocument.safeParse({ ...input([encAsSig as NodeKey]), version: 1 }).success).toBe(false);
  });

  it('refuses a signature by a key the document does not list', async () => {
    const { jws } = await v1();
    const extra = await addSignatures(jws, [stranger], NODE_DOCUMENT_TYP);
    await expect(verifyNodeDocument(extra, { now: at(HOUR) })).rejects.toMatchObject({ code: 'KEY_UNKNOWN' });
    await expect(createNodeDocument(input([sigEntry(k1)]), [k1, stranger])).rejects.toMatchObject({ code: 'KEY_UNKNOWN' });
  });

  it('refuses a signature by a listed key that is not valid at issuedAt', async () => {
    const revoked = revokeKey([sigEntry(k1), sigEntry(k2)], k2.kid, { at: at(-HOUR), reason: 'retired' });
    await expect(createNodeDocument(input(revoked), [k1, k2])).rejects.toMatchObject({ code: 'KEY_NOT_VALID' });
    const signed = await rawSign({ ...input(revoked), version: 1 }, [k1, k2]);
    await expect(verifyNodeDocument(signed, { now: at(HOUR) })).rejects.toMatchObject({ code: 'KEY_NOT_VALID' });
    await expect(verifyNodeDocument(await rawSign({ ...input(revoked), version: 1 }, [k1]), { now: at(HOUR) })).resolves.toBeDefined();
  });

  it('refuses a document a current key did not co-sign', async () => {
    const keys = [sigEntry(k1), sigEntry(k2)];
    await expect(createNodeDocument(input(keys), [k1])).rejects.toMatchObject({ code: 'NODE_DOCUMENT_INVALID' });
    const full = await createNodeDocument(input(keys), [k1, k2]);
    await expect(verifyNodeDocument(full, { now: at(HOUR) })).resolves.toBeDefined();
    const stripped = { payload: full.payload, signatures: full.signatures.slice(1) };
    await expect(verifyNodeDocument(stripped, { now: at(HOUR) })).rejects.toMatchObject({ code: 'NODE_DOCUMENT_INVALID' });
  });

  it('refuses an expired document and one issued in the future beyond the skew', async () => {
    const { jws } = await v1();
    await expect(verifyNodeDocument(jws, { now: at(30 * DAY - 1000) })).resolves.toBeDefined();
    await expect(verifyNodeDocument(jws, { now: at(30 * DAY) })).rejects.toMatchObject({ code: 'NODE_DOCUMENT_EXPIRED' });
    await expect(verifyNodeDocument(jws, { now: at(-4 * 60 * 1000) })).resolves.toBeDefined();
    await expect(verifyNodeDocument(jws, { now: at(-6 * 60 * 1000) })).rejects.toMatchObject({ code: 'CLOCK_SKEW' });
  });

  it('refuses a document whose signers are no longer valid now', async () => {
    const keys = [nodeKeyEntry(k1, { notBefore: T0, notAfter: at(DAY) })];
    const jws = await createNodeDocument(input(keys), [k1]);
    await expect(verifyNodeDocument(jws, { now: at(HOUR) })).resolves.toBeDefined();
    await expect(verifyNodeDocument(jws, { now: at(2 * DAY) })).rejects.toMatchObject({ code: 'KEY_NOT_VALID' });
  });

  it('refuses a document no pinned key signed (FINGERPRINT_MISMATCH)', async () => {
    const { jws } = await v1();
    await expect(verifyNodeDocument(jws, { now: at(HOUR), pinnedFingerprints: [k1.kid] })).resolves.toBeDefined();
    await expect(verifyNodeDocument(jws, { now: at(HOUR), pinnedFingerprints: [stranger.kid] })).rejects.toMatchObject({
      code: 'FINGERPRINT_MISMATCH',
    });
    await expect(verifyNodeDocument(jws, { now: at(HOUR), pinnedFingerprints: [] })).rejects.toMatchObject({ code: 'FINGERPRINT_MISMATCH' });
    // Listing the pinned key is not enough: an impostor can copy a public key and mark it revoked so it need not sign.
    const copied = revokeKey([sigEntry(stranger), sigEntry(k1)], k1.kid, { at: at(-HOUR), reason: 'retired' });
    const impostor = await createNodeDocument(input(copied), [stranger]);
    await expect(verifyNodeDocument(impostor, { now: at(HOUR) })).resolves.toBeDefined();
    await expect(verifyNodeDocument(impostor, { now: at(HOUR), pinnedFingerprints: [k1.kid] })).rejects.toMatchObject({
      code: 'FINGERPRINT_MISMATCH',
    });
  });

  it('refuses a payload with one byte flipped', async () => {
    const { jws } = await v1();
    const bytes = fromB64u(jws.payload);
    const i = new TextDecoder().decode(bytes).indexOf('Bruxelles');
    expect(i).toBeGreaterThan(0);
    bytes[i] = bytes[i]! ^ 0x20; // 'B' -> 'b': still valid JSON and a valid name, so only the signature can catch it
    const tampered = { ...jws, payload: b64u(bytes) };
    expect(decode(tampered).name).toContain('bruxelles');
    await expect(verifyNodeDocument(tampered, { now: at(HOUR) })).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });

  it('refuses another typ, a malformed container and a document for another node', async () => {
    const doc = { ...input([sigEntry(k1)]), version: 1 };
    await expect(verifyNodeDocument(await rawSign(doc, [k1], 'passerelle-consent+json'), { now: at(HOUR) })).rejects.toMatchObject({
      code: 'WRONG_TYPE',
    });
    await expect(verifyNodeDocument({ payload: 42, signatures: [] }, { now: at(HOUR) })).rejects.toMatchObject({ code: 'MALFORMED' });
    const { jws } = await v1();
    await expect(verifyNodeDocument(jws, { now: at(HOUR), expectedId: 'https://partenaire.example.org' })).rejects.toMatchObject({
      code: 'NODE_DOCUMENT_INVALID',
    });
  });

  it('checks the inbox origin, uniqueness and version links in the schema', () => {
    const base = { ...input([sigEntry(k1), encEntry(e1)]), version: 1 };
    expect(NodeDocument.safeParse(base).success).toBe(true);
    for (const bad of [
      { inbox: 'https://autre.example.be/inbox' },
      { inbox: 'http://accueil.example.be/inbox' },
      { inbox: 'https://user:pw@accueil.example.be/inbox' },
      { roles: ['ngo', 'ngo'] },
      { roles: [] },
      { languages: [] },
      { messageTypes: ['Referral'] },
      { keys: [sigEntry(k1), sigEntry(k1)] },
      { keys: [encEntry(e1)] },
      { keys: [{ ...sigEntry(k1), revocationReason: 'retired' }] },
      { expiresAt: base.issuedAt },
      { previous: { version: 1, digest: 'A'.repeat(43) } },
      { name: '' },
      { country: 'XX' },
      { extra: true },
    ]) {
      expect(NodeDocument.safeParse({ ...base, ...bad }).success, JSON.stringify(bad)).toBe(false);
    }
    const loopback = { ...base, id: 'http://127.0.0.1:8443', inbox: 'http://127.0.0.1:8443/inbox' };
    expect(NodeDocument.safeParse(loopback).success).toBe(true);
  });

  it('reports schema failures as SCHEMA_INVALID', async () => {
    await expect(createNodeDocument(input([sigEntry(k1)], { inbox: 'https://autre.example.be/inbox' }), [k1])).rejects.toMatchObject({
      code: 'SCHEMA_INVALID',
    });
    const signed = await rawSign({ ...input([sigEntry(k1)]), version: 0 }, [k1]);
    await expect(verifyNodeDocument(signed, { now: at(HOUR) })).rejects.toMatchObject({ code: 'SCHEMA_INVALID' });
  });

  it('generates a JSON Schema that refuses unknown members', () => {
    const schema = z.toJSONSchema(NodeDocument) as { $defs: Record<string, { additionalProperties?: unknown; required?: string[] }> };
    for (const id of ['NodeDocument', 'NodeSigningKey', 'NodeEncryptionKey', 'NodeDocumentLink', 'PublicSigningJwk']) {
      expect(schema.$defs[id]?.additionalProperties, id).toBe(false);
    }
    expect(schema.$defs.NodeDocument?.required).not.toContain('previous');
    expect(schema.$defs.NodeSigningKey?.required).toEqual(expect.arrayContaining(['kid', 'use', 'jwk', 'notBefore']));
  });
});

describe('node document: key validity', () => {
  it('a revoked key is valid before revokedAt and not from revokedAt on', () => {
    const keys = revokeKey([sigEntry(k1), encEntry(e1)], k1.kid, { at: at(10 * DAY), reason: 'compromised' });
    const doc = NodeDocument.parse({ ...input(keys), version: 1 });
    expect(keyValidAt(doc, k1.kid, at(10 * DAY - 1000))).toBe(true);
    expect(keyValidAt(doc, k1.kid, toTimestamp(at(10 * DAY)))).toBe(false);
    expect(keyValidAt(doc, k1.kid, at(20 * DAY))).toBe(false);
    expect(keyValidAt(doc, k1.kid, at(-1000))).toBe(false);
    expect(keyValidAt(doc, k1.kid, at(DAY), 'enc')).toBe(false);
    expect(keyValidAt(doc, e1.kid, at(DAY), 'enc')).toBe(true);
    expect(resolveSigningKey(doc, k1.kid, at(DAY)).x).toBe(k1.publicJwk.x);
    expect(signingKeyAt(doc, k1.kid, at(DAY))?.x).toBe(k1.publicJwk.x);
    expect(signingKeyAt(doc, k1.kid, at(11 * DAY))).toBeUndefined();
    expect(() => resolveSigningKey(doc, k1.kid, at(11 * DAY))).toThrow(expect.objectContaining({ code: 'KEY_NOT_VALID' }));
    expect(() => resolveSigningKey(doc, k2.kid, at(DAY))).toThrow(expect.objectContaining({ code: 'KEY_UNKNOWN' }));
    expect(() => resolveSigningKey(doc, e1.kid, at(DAY))).toThrow(expect.objectContaining({ code: 'KEY_UNKNOWN' }));
  });

  it('revokeKey never postpones an earlier revocation', () => {
    const once = revokeKey([sigEntry(k1)], k1.kid, { at: at(DAY), reason: 'superseded' });
    const twice = revokeKey(once, k1.kid, { at: at(5 * DAY), reason: 'compromised' });
    expect(twice[0]).toMatchObject({ revokedAt: toTimestamp(at(DAY)), revocationReason: 'compromised' });
    expect(() => revokeKey(once, k2.kid, { at: at(DAY), reason: 'retired' })).toThrow(expect.objectContaining({ code: 'KEY_UNKNOWN' }));
  });

  it('picks the newest valid encryption key and fails when none is valid', () => {
    const keys = [sigEntry(k1), nodeKeyEntry(e1, { notBefore: T0, notAfter: at(20 * DAY) }), encEntry(e2, at(5 * DAY))];
    const doc = NodeDocument.parse({ ...input(keys), version: 1 });
    expect(currentEncryptionKey(doc, at(DAY)).kid).toBe(e1.kid);
    expect(currentEncryptionKey(doc, at(6 * DAY)).kid).toBe(e2.kid);
    const noEnc = NodeDocument.parse({ ...input([sigEntry(k1), nodeKeyEntry(e1, { notBefore: T0, notAfter: at(DAY) })]), version: 1 });
    expect(() => currentEncryptionKey(noEnc, at(2 * DAY))).toThrow(expect.objectContaining({ code: 'KEY_NOT_VALID' }));
  });
});

describe('node document: versions and rotation', () => {
  it('follows the chain across two rotations signed by old and new keys', async () => {
    const first = (await v1()).verified;
    const jws2 = await rotateNodeDocument(first, {}, { oldKeys: [k1], newKeys: [k2], now: at(DAY) });
    const second = await verifyNodeDocument(jws2, { now: at(DAY), known: first, pinnedFingerprints: [k1.kid] });
    expect(second.document.version).toBe(2);
    expect(second.document.previous).toEqual({ version: 1, digest: first.payloadDigest });
    expect(second.signers).toEqual([k1.kid, k2.kid]);
    expect(second.document.keys.find((k) => k.kid === k1.kid)).toMatchObject({
      revokedAt: toTimestamp(at(2 * DAY)),
      revocationReason: 'superseded',
    });

    const jws3 = await rotateNodeDocument(
      second,
      { name: 'Accueil Transit Bruxelles-Midi (exemple)', keys: [...second.document.keys, encEntry(e2, at(3 * DAY))] },
      { oldKeys: [k2], newKeys: [k3], now: at(3 * DAY) },
    );
    const third = await verifyNodeDocument(jws3, { now: at(3 * DAY), known: second, pinnedFingerprints: [k1.kid] });
    expect(third.document.version).toBe(3);
    expect(third.document.name).toContain('Midi');
    expect(third.document.previous).toEqual({ version: 2, digest: second.payloadDigest });
    expect(nodeFingerprints(third.document)).toEqual([k1.kid, k2.kid, k3.kid]);
    expect(currentEncryptionKey(third.document, at(3 * DAY)).kid).toBe(e2.kid);
    // The history still answers: k1 signed validly on day 1, not on day 3.
    expect(keyValidAt(third.document, k1.kid, at(DAY))).toBe(true);
    expect(keyValidAt(third.document, k1.kid, at(3 * DAY))).toBe(false);

    // Without the chain, the originally pinned key does not vouch for version 3.
    await expect(verifyNodeDocument(jws3, { now: at(3 * DAY), pinnedFingerprints: [k1.kid] })).rejects.toMatchObject({
      code: 'FINGERPRINT_MISMATCH',
    });
    // Skipping version 2 needs a signature by a key of version 1, which version 3 does not carry.
    await expect(verifyNodeDocument(jws3, { now: at(3 * DAY), known: first })).rejects.toMatchObject({ code: 'ROTATION_INVALID' });
    expect((await acceptNewer(second, jws3, { now: at(3 * DAY) })).document.version).toBe(3);
  });

  it('refuses a rotation signed only by the new key', async () => {
    const first = (await v1()).verified;
    const keys = [...revokeKey([sigEntry(k1), encEntry(e1)], k1.kid, { at: at(DAY), reason: 'superseded' }), sigEntry(k2, at(DAY))];
    const link = { version: 1, digest: first.payloadDigest };
    const jws = await createNodeDocument(input(keys, { version: 2, issuedAt: toTimestamp(at(DAY)), previous: link }), [k2]);
    // Self-consistent on its own, so only the chain can tell.
    await expect(verifyNodeDocument(jws, { now: at(DAY) })).resolves.toBeDefined();
    await expect(verifyNodeDocument(jws, { now: at(DAY), known: first })).rejects.toMatchObject({ code: 'ROTATION_INVALID' });
    await expect(verifyNodeDocument(jws, { now: at(DAY), pinnedFingerprints: [k1.kid] })).rejects.toMatchObject({
      code: 'FINGERPRINT_MISMATCH',
    });
  });

  it('refuses a rotation the new current key did not co-sign', async () => {
    const first = (await v1()).verified;
    const keys = [sigEntry(k1), encEntry(e1), sigEntry(k2, at(DAY))];
    const payload = { ...input(keys, { issuedAt: toTimestamp(at(DAY)) }), version: 2, previous: { version: 1, digest: first.payloadDigest } };
    await expect(verifyNodeDocument(await rawSign(payload, [k1]), { now: at(DAY), known: first })).rejects.toMatchObject({
      code: 'ROTATION_INVALID',
    });
    await expect(verifyNodeDocument(await rawSign(payload, [k1, k2]), { now: at(DAY), known: first })).resolves.toBeDefined();
  });

  it('refuses a successor that links to another predecessor or omits the link', async () => {
    const first = (await v1()).verified;
    const keys = [sigEntry(k1), encEntry(e1)];
    const issuedAt = toTimestamp(at(DAY));
    const forked = await createNodeDocument(input(keys, { version: 2, issuedAt, previous: { version: 1, digest: 'A'.repeat(43) } }), [k1]);
    await expect(verifyNodeDocument(forked, { now: at(DAY), known: first })).rejects.toMatchObject({ code: 'ROTATION_INVALID' });
    const unlinked = await createNodeDocument(input(keys, { version: 2, issuedAt }), [k1]);
    await expect(verifyNodeDocument(unlinked, { now: at(DAY), known: first })).rejects.toMatchObject({ code: 'ROTATION_INVALID' });
    const linked = await createNodeDocument(input(keys, { version: 2, issuedAt, previous: { version: 1, digest: first.payloadDigest } }), [k1]);
    await expect(verifyNodeDocument(linked, { now: at(DAY), known: first })).resolves.toBeDefined();
  });

  it('does not let a key the successor calls compromised carry the chain', async () => {
    const first = (await v1()).verified;
    const rotate = (reason: 'compromised' | 'superseded') =>
      rotateNodeDocument(
        first,
        { keys: revokeKey(first.document.keys, k1.kid, { at: at(DAY + HOUR), reason }) },
        { oldKeys: [k1], newKeys: [k2], now: at(DAY) },
      );
    await expect(rotate('compromised')).rejects.toMatchObject({ code: 'ROTATION_INVALID' });
    const superseded = await rotate('superseded');
    await expect(verifyNodeDocument(superseded, { now: at(DAY), known: first })).resolves.toBeDefined();

    const compromisedKeys = [...revokeKey(first.document.keys, k1.kid, { at: at(DAY + HOUR), reason: 'compromised' }), sigEntry(k2, at(DAY))];
    const link = { version: 1, digest: first.payloadDigest };
    const forged = await createNodeDocument(input(compromisedKeys, { version: 2, issuedAt: toTimestamp(at(DAY)), previous: link }), [k1, k2]);
    await expect(verifyNodeDocument(forged, { now: at(DAY), known: first })).rejects.toMatchObject({ code: 'ROTATION_INVALID' });
  });

  it('recovers from a lost key through a fingerprint pinned out of band', async () => {
    const first = (await v1()).verified;
    const keys = [...revokeKey(first.document.keys, k1.kid, { at: at(HOUR), reason: 'compromised' }), sigEntry(k2, at(DAY))];
    const link = { version: 1, digest: first.payloadDigest };
    const jws = await createNodeDocument(input(keys, { version: 2, issuedAt: toTimestamp(at(DAY)), previous: link }), [k2]);
    await expect(verifyNodeDocument(jws, { now: at(DAY), known: first, pinnedFingerprints: [k1.kid] })).rejects.toMatchObject({
      code: 'ROTATION_INVALID',
    });
    const recovered = await verifyNodeDocument(jws, { now: at(DAY), known: first, pinnedFingerprints: [k2.kid] });
    expect(recovered.document.version).toBe(2);
  });

  it('refuses a rollback to an older version even though it is validly signed', async () => {
    const { jws: jws1, verified: first } = await v1();
    const jws2 = await rotateNodeDocument(first, {}, { oldKeys: [k1], newKeys: [k2], now: at(DAY) });
    const second = await verifyNodeDocument(jws2, { now: at(DAY), known: first });
    await expect(verifyNodeDocument(jws1, { now: at(DAY) })).resolves.toBeDefined();
    await expect(verifyNodeDocument(jws1, { now: at(DAY), known: second })).rejects.toMatchObject({ code: 'NODE_DOCUMENT_STALE' });
    await expect(acceptNewer(second, jws1, { now: at(DAY) })).rejects.toMatchObject({ code: 'NODE_DOCUMENT_STALE' });
    expect((await acceptNewer(undefined, jws1, { now: at(DAY) })).document.version).toBe(1);
    expect(await acceptNewer(second, JSON.parse(JSON.stringify(jws2)), { now: at(DAY) })).toBe(second);
  });

  it('refuses two different documents with the same version', async () => {
    const first = (await v1()).verified;
    const twin = await createNodeDocument(input([sigEntry(k1), encEntry(e1)], { name: 'Accueil Transit Anvers (exemple)' }), [k1]);
    await expect(verifyNodeDocument(twin, { now: at(HOUR) })).resolves.toBeDefined();
    await expect(verifyNodeDocument(twin, { now: at(HOUR), known: first })).rejects.toMatchObject({ code: 'NODE_DOCUMENT_INVALID' });
  });

  it('refuses a successor for another node, one that drops key history or undoes a revocation', async () => {
    const first = (await v1()).verified;
    const jws2 = await rotateNodeDocument(first, {}, { oldKeys: [k1], newKeys: [k2], now: at(DAY) });
    const second = await verifyNodeDocument(jws2, { now: at(DAY), known: first });
    const link = { version: 2, digest: second.payloadDigest };
    const issuedAt = toTimestamp(at(DAY + HOUR));
    const v3 = (keys: NodeKey[], overrides: Partial<NodeDocumentInput> = {}) =>
      // k1 is superseded only from day 2, so at issuedAt both keys are current and both sign.
      createNodeDocument(input(keys, { version: 3, issuedAt, previous: link, ...overrides }), [k1, k2]);

    const dropped = await v3(second.document.keys.filter((k) => k.kid !== e1.kid));
    await expect(verifyNodeDocument(dropped, { now: at(DAY + HOUR), known: second })).rejects.toMatchObject({ code: 'NODE_DOCUMENT_INVALID' });

    const undone = await v3(second.document.keys.map((k) => (k.kid === k1.kid ? sigEntry(k1) : k)));
    await expect(verifyNodeDocument(undone, { now: at(DAY + HOUR), known: second })).rejects.toMatchObject({ code: 'NODE_DOCUMENT_INVALID' });

    const kept = await v3(second.document.keys);
    await expect(verifyNodeDocument(kept, { now: at(DAY + HOUR), known: second })).resolves.toBeDefined();

    const otherNode = await v3(second.document.keys, { id: 'https://partenaire.example.org', inbox: 'https://partenaire.example.org/inbox' });
    await expect(verifyNodeDocument(otherNode, { now: at(DAY + HOUR), known: second })).rejects.toMatchObject({
      code: 'NODE_DOCUMENT_INVALID',
    });
  });

  it('refuses to rotate without an old key that carries the chain', async () => {
    const first = (await v1()).verified;
    await expect(rotateNodeDocument(first, {}, { oldKeys: [], newKeys: [k2], now: at(DAY) })).rejects.toMatchObject({
      code: 'ROTATION_INVALID',
    });
    await expect(rotateNodeDocument(first, {}, { oldKeys: [k1], newKeys: [k2], now: at(-DAY) })).rejects.toMatchObject({
      code: 'ROTATION_INVALID',
    });
    const update = await rotateNodeDocument(first, { messageTypes: ['referral'] }, { oldKeys: [k1], newKeys: [], now: at(DAY) });
    const updated = await verifyNodeDocument(update, { now: at(DAY), known: first, pinnedFingerprints: [k1.kid] });
    expect(updated.document.messageTypes).toEqual(['referral']);
    expect(updated.document.keys.find((k) => k.kid === k1.kid)?.revokedAt).toBeUndefined();
    expect(updated.signers).toEqual([k1.kid]);
  });
});
