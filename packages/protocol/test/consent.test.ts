import { beforeAll, describe, expect, it } from 'vitest';
import type { NodeKeyResolver } from '../src/agreement.js';
import { CONSENT_TYP, ConsentRecord, signConsent, verifyConsent, Withdrawal } from '../src/consent.js';
import { b64uJson, sha256b64u } from '../src/encoding.js';
import { ProtocolError } from '../src/errors.js';
import { signCompact } from '../src/jws.js';
import { generateSigningKey, type SigningKeyPair } from '../src/keys.js';

const BE = 'https://accueil.example.be';
const FR = 'https://corridor.example.fr';
const SN = 'https://reintegration.example.sn';

const record: ConsentRecord = {
  id: '0195b7d2-1e4f-7a20-9c31-5d6e7f809a01',
  version: 1,
  subject: 'case-be-2026-0042',
  controller: BE,
  purposes: ['return-counselling', 'reintegration-planning'],
  recipients: [SN],
  categories: ['identity', 'contact', 'health', 'return-travel'],
  explicitConsent: ['health'],
  collection: {
    method: 'oral',
    interpreter: { kind: 'intercultural-mediator', language: 'wo' },
    language: 'fr',
    text: { version: 'consent-text-v3', digest: 'RHK4k5arg_rZE41AtAyZDJScwYK8K6V98Owvy98qNUs' },
  },
  collectedAt: '2026-03-02T10:30:00Z',
  expiresAt: '2026-09-02T10:30:00Z',
  collectedBy: { role: 'social-worker', staffRef: 'staff-be-117' },
};

let be: SigningKeyPair;
let fr: SigningKeyPair;
let calls: { nodeId: string; kid: string; at: Date }[];
let resolve: NodeKeyResolver;

beforeAll(async () => {
  be = await generateSigningKey();
  fr = await generateSigningKey();
  const keys = new Map([
    [BE, be],
    [FR, fr],
  ]);
  resolve = (nodeId, kid, at) => {
    calls.push({ nodeId, kid, at });
    const key = keys.get(nodeId);
    return key?.kid === kid ? key.publicJwk : undefined;
  };
});

async function expectCode(promise: Promise<unknown>, code: string): Promise<ProtocolError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).code).toBe(code);
  return error as ProtocolError;
}

describe('consent record schema', () => {
  it('accepts a complete record', () => {
    expect(ConsentRecord.parse(record)).toEqual(record);
  });

  it('refuses a name or any other unknown member', () => {
    expect(ConsentRecord.safeParse({ ...record, name: 'Awa Example' }).success).toBe(false);
    expect(ConsentRecord.safeParse({ ...record, collectedBy: { ...record.collectedBy, staffRef: 'Marie Exemple' } }).success).toBe(false);
  });

  it('refuses explicit consent outside the categories', () => {
    const parsed = ConsentRecord.safeParse({ ...record, explicitConsent: ['health', 'vulnerability'] });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['explicitConsent']);
  });

  it('refuses an expiry not after collection, and an issuedAt before collection', () => {
    expect(ConsentRecord.safeParse({ ...record, expiresAt: record.collectedAt }).success).toBe(false);
    expect(ConsentRecord.safeParse({ ...record, issuedAt: '2026-03-01T00:00:00Z' }).success).toBe(false);
    expect(ConsentRecord.safeParse({ ...record, issuedAt: '2026-03-04T08:00:00Z' }).success).toBe(true);
  });

  it('keeps a minor without guardian parseable: enforcement decides on it', () => {
    expect(ConsentRecord.safeParse({ ...record, minor: { isMinor: true } }).success).toBe(true);
  });

  it('refuses duplicates in lists', () => {
    expect(ConsentRecord.safeParse({ ...record, recipients: [SN, SN] }).success).toBe(false);
    expect(ConsentRecord.safeParse({ ...record, purposes: [] }).success).toBe(false);
  });

  it('withdrawal facts: whole or per purpose', () => {
    expect(Withdrawal.parse({ consentId: record.id, at: '2026-04-01T09:00:00Z' })).toEqual({ consentId: record.id, at: '2026-04-01T09:00:00Z' });
    expect(Withdrawal.safeParse({ consentId: record.id, purposes: [], at: '2026-04-01T09:00:00Z' }).success).toBe(false);
  });
});

describe('signConsent / verifyConsent', () => {
  it('round-trips, with the digest of the exact JWS and the key looked up at collection time', async () => {
    calls = [];
    const jws = await signConsent(record, be);
    const verified = await verifyConsent(jws, resolve);
    expect(verified.record).toEqual(record);
    expect(verified.jws).toBe(jws);
    expect(verified.digest).toBe(await sha256b64u(jws));
    expect(calls).toEqual([{ nodeId: BE, kid: be.kid, at: new Date(record.collectedAt) }]);
  });

  it('looks the key up at issuedAt when the record was signed after collection', async () => {
    calls = [];
    await verifyConsent(await signConsent({ ...record, issuedAt: '2026-03-04T08:00:00Z' }, be), resolve);
    expect(calls[0]?.at).toEqual(new Date('2026-03-04T08:00:00Z'));
  });

  it('refuses to sign a record that does not match its schema', async () => {
    await expectCode(signConsent({ ...record, explicitConsent: ['vulnerability'] }, be), 'SCHEMA_INVALID');
  });

  it('tampered payload: CONSENT_INVALID', async () => {
    const jws = await signConsent(record, be);
    const [h, , s] = jws.split('.');
    const widened = b64uJson({ ...record, recipients: [SN, FR] });
    const error = await expectCode(verifyConsent(`${h}.${widened}.${s}`, resolve), 'CONSENT_INVALID');
    expect(error.details).toEqual({ reason: 'SIGNATURE_INVALID' });
  });

  it('signed by another organisation than its controller: CONSENT_INVALID', async () => {
    const error = await expectCode(verifyConsent(await signConsent(record, fr), resolve), 'CONSENT_INVALID');
    expect(error.details).toEqual({ reason: 'KEY_UNKNOWN' });
  });

  it('a record claiming another controller is checked against that controller', async () => {
    calls = [];
    await expectCode(verifyConsent(await signConsent({ ...record, controller: FR }, be), resolve), 'CONSENT_INVALID');
    expect(calls.map((c) => c.nodeId)).toEqual([FR]);
  });

  it('wrong typ or a payload that is not a consent record: CONSENT_INVALID', async () => {
    await expectCode(verifyConsent(await signCompact(record, be, 'passerelle-agreement-termination+jwt'), resolve), 'CONSENT_INVALID');
    await expectCode(verifyConsent(await signCompact({ ...record, subject: 'Awa' }, be, CONSENT_TYP), resolve), 'CONSENT_INVALID');
    await expectCode(verifyConsent('not-a-jws', resolve), 'CONSENT_INVALID');
  });

  it("passes the resolver's own failure through unchanged", async () => {
    const outage = new ProtocolError('STORE_UNAVAILABLE');
    await expect(
      verifyConsent(await signConsent(record, be), () => {
        throw outage;
      }),
    ).rejects.toBe(outage);
  });
});
