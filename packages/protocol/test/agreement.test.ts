import { beforeAll, describe, expect, it } from 'vitest';
import {
  Agreement,
  agreementStatus,
  createAgreement,
  signAgreement,
  signTermination,
  verifyAgreement,
  verifyTermination,
  type AgreementInput,
  type AgreementTermination,
  type NodeKeyResolver,
} from '../src/agreement.js';
import { b64uJson } from '../src/encoding.js';
import { ProtocolError } from '../src/errors.js';
import { generateSigningKey, type SigningKeyPair } from '../src/keys.js';
import { UUID_V7 } from '../src/vocabulary.js';

const BE = 'https://accueil.example.be';
const FR = 'https://corridor.example.fr';
const SN = 'https://reintegration.example.sn';

const input: AgreementInput = {
  title: 'Assisted return and reintegration, Belgium - Senegal',
  parties: [
    { node: BE, role: 'reception-agency', name: 'Accueil Exemple Belgique' },
    { node: SN, role: 'reintegration-partner', name: 'Réintégration Exemple Sénégal' },
  ],
  purposes: ['reintegration-planning', 'reintegration-assistance', 'monitoring'],
  flows: [
    { from: BE, to: SN, messageTypes: ['referral', 'reintegration-profile'], categories: ['identity', 'contact', 'reintegration-plan'] },
    { from: SN, to: BE, messageTypes: ['reintegration-update'], categories: ['monitoring'], purposes: ['monitoring'] },
  ],
  onwardReferral: { allowed: false },
  retention: [
    { category: 'identity', days: 1825 },
    { category: 'contact', days: 730 },
    { category: 'reintegration-plan', days: 1825 },
    { category: 'monitoring', days: 1825 },
  ],
  legalBasis: { basis: 'consent', reference: 'GDPR art. 6(1)(a); MoU BE-SN/2026/01' },
  validFrom: '2026-01-01T00:00:00Z',
  validUntil: '2028-01-01T00:00:00Z',
  createdAt: '2025-12-15T09:00:00Z',
};

const NOW = '2026-03-10T14:00:00Z';

let be: SigningKeyPair;
let sn: SigningKeyPair;
let fr: SigningKeyPair;
let resolve: NodeKeyResolver;
let lookups: { nodeId: string; at: Date }[];

beforeAll(async () => {
  [be, sn, fr] = await Promise.all([generateSigningKey(), generateSigningKey(), generateSigningKey()]);
  const keys = new Map([
    [BE, be],
    [SN, sn],
    [FR, fr],
  ]);
  resolve = async (nodeId, kid, at) => {
    lookups.push({ nodeId, at });
    const key = keys.get(nodeId);
    return key?.kid === kid ? key.publicJwk : undefined;
  };
  lookups = [];
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

async function fullySigned() {
  const agreement = createAgreement(input);
  return { agreement, jws: await signAgreement(await signAgreement(agreement, BE, be), SN, sn) };
}

describe('createAgreement', () => {
  it('fills id (UUID v7), version 1 and createdAt', () => {
    const { createdAt: _omitted, ...rest } = input;
    const a = createAgreement(rest);
    expect(a.id).toMatch(UUID_V7);
    expect(a.version).toBe(1);
    expect(Date.parse(a.createdAt)).toBeLessThanOrEqual(Date.now());
    expect(createAgreement({ ...input, createdAt: new Date('2025-12-15T09:00:00.700Z') }).createdAt).toBe('2025-12-15T09:00:00Z');
  });

  it.each([
    ['a flow to an organisation that is not a party', { flows: [{ from: BE, to: FR, messageTypes: ['referral'], categories: [] }] }],
    ['a flow from a party to itself', { flows: [{ from: BE, to: BE, messageTypes: ['referral'], categories: [] }] }],
    ['a flow purpose outside the agreement purposes', { flows: [{ from: BE, to: SN, messageTypes: ['referral'], categories: [], purposes: ['case-coordination'] }] }],
    ['a category shared without a retention period', { retention: [] }],
    ['onward recipients while onward referral is not allowed', { onwardReferral: { allowed: false, to: [FR] } }],
    ['a validity period that ends before it starts', { validUntil: '2025-01-01T00:00:00Z' }],
    ['the same node as two parties', { parties: [input.parties[0]!, { ...input.parties[0]!, name: 'Again' }] }],
    ['a single party', { parties: [input.parties[0]!], flows: [] }],
    ['an unknown legal basis', { legalBasis: { basis: 'convenience', reference: 'none' } }],
    ['an unknown member', { signatories: [] }],
  ])('refuses %s', (_what, change) => {
    expect(() => createAgreement({ ...input, ...change } as AgreementInput)).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }));
  });
});

describe('signing and verifying', () => {
  it('is in force once every party has signed, within its validity', async () => {
    const { agreement, jws } = await fullySigned();
    lookups = [];
    const v = await verifyAgreement(jws, resolve, { now: NOW });
    expect(v.agreement).toEqual(agreement);
    expect(v.signedBy).toEqual([BE, SN]);
    expect(v).toMatchObject({ inForce: true, state: 'in-force', missingSignatures: [] });
    expect(v.reason).toBeUndefined();
    // Party keys are looked up at createdAt.
    expect(new Set(lookups.map((l) => l.at.toISOString()))).toEqual(new Set(['2025-12-15T09:00:00.000Z']));
  });

  it('a missing co-signature leaves it not in force', async () => {
    const jws = await signAgreement(createAgreement(input), BE, be);
    const v = await verifyAgreement(jws, resolve, { now: NOW });
    expect(v).toMatchObject({ inForce: false, state: 'awaiting-signatures', reason: 'AGREEMENT_NOT_IN_FORCE', signedBy: [BE], missingSignatures: [SN] });
  });

  it('co-signing twice with the same key adds nothing', async () => {
    const { jws } = await fullySigned();
    expect(await signAgreement(jws, SN, sn)).toBe(jws);
  });

  it('refuses to sign for an organisation that is not a party', async () => {
    await expectCode(signAgreement(createAgreement(input), FR, fr), 'AGREEMENT_INVALID');
  });

  it('a signature by a key of no party: AGREEMENT_INVALID', async () => {
    const { jws } = await fullySigned();
    const withIntruder = await signAgreement(jws, SN, fr);
    const error = await expectCode(verifyAgreement(withIntruder, resolve, { now: NOW }), 'AGREEMENT_INVALID');
    expect(error.details).toEqual({ reason: 'KEY_UNKNOWN' });
  });

  it('tampered payload: AGREEMENT_INVALID', async () => {
    const { agreement, jws } = await fullySigned();
    const widened = { ...jws, payload: b64uJson({ ...agreement, onwardReferral: { allowed: true } }) };
    const error = await expectCode(verifyAgreement(widened, resolve, { now: NOW }), 'AGREEMENT_INVALID');
    expect(error.details).toEqual({ reason: 'SIGNATURE_INVALID' });
  });

  it('a payload that is not an agreement, or not a JWS at all: AGREEMENT_INVALID', async () => {
    const { jws } = await fullySigned();
    await expectCode(verifyAgreement({ ...jws, payload: b64uJson({ title: 'x' }) }, resolve, { now: NOW }), 'AGREEMENT_INVALID');
    await expectCode(verifyAgreement('eyJ.x.y', resolve, { now: NOW }), 'AGREEMENT_INVALID');
    await expectCode(verifyAgreement({ ...jws, signatures: [] }, resolve, { now: NOW }), 'AGREEMENT_INVALID');
  });

  it('not yet valid, expired', async () => {
    const { jws } = await fullySigned();
    expect(await verifyAgreement(jws, resolve, { now: '2025-12-31T23:59:59Z' })).toMatchObject({ inForce: false, state: 'not-yet-valid' });
    expect(await verifyAgreement(jws, resolve, { now: '2028-01-01T00:00:00Z' })).toMatchObject({ inForce: false, state: 'expired' });
    expect(await verifyAgreement(jws, resolve, { now: new Date('2027-12-31T23:59:59Z') })).toMatchObject({ inForce: true });
  });
});

describe('termination', () => {
  it('ends the agreement from its time on', async () => {
    const { agreement, jws } = await fullySigned();
    const termination: AgreementTermination = { agreementId: agreement.id, by: SN, at: '2026-06-30T00:00:00Z', reason: 'Programme funding ends' };
    const t = await verifyTermination(await signTermination(termination, sn), agreement, resolve);
    expect(t.termination).toEqual(termination);
    const verified = await verifyAgreement(jws, resolve, { now: NOW });
    expect(agreementStatus(verified, [t.termination], '2026-06-29T23:59:59Z')).toMatchObject({ inForce: true });
    expect(agreementStatus(verified, [t.termination], '2026-06-30T00:00:00Z')).toMatchObject({
      inForce: false,
      state: 'terminated',
      reason: 'AGREEMENT_NOT_IN_FORCE',
      terminatedBy: termination,
    });
    expect(await verifyAgreement(jws, resolve, { now: '2026-07-01T00:00:00Z', terminations: [termination] })).toMatchObject({ state: 'terminated' });
  });

  it('ignores terminations of other agreements', async () => {
    const { agreement } = await fullySigned();
    const other: AgreementTermination = { agreementId: '0194a3c0-5b2e-7d41-8a6f-1c2d3e4f5a99', by: SN, at: '2026-01-30T00:00:00Z', reason: 'x' };
    expect(agreementStatus({ agreement, signedBy: [BE, SN] }, [other], NOW)).toMatchObject({ inForce: true });
  });

  it('must come from a party, for this agreement, signed by that party', async () => {
    const { agreement } = await fullySigned();
    const base: AgreementTermination = { agreementId: agreement.id, by: BE, at: '2026-06-30T00:00:00Z', reason: 'Renegotiation' };
    await expectCode(verifyTermination(await signTermination({ ...base, by: FR }, fr), agreement, resolve), 'AGREEMENT_INVALID');
    await expectCode(
      verifyTermination(await signTermination({ ...base, agreementId: '0194a3c0-5b2e-7d41-8a6f-1c2d3e4f5a99' }, be), agreement, resolve),
      'AGREEMENT_INVALID',
    );
    await expectCode(verifyTermination(await signTermination(base, sn), agreement, resolve), 'AGREEMENT_INVALID');
    lookups = [];
    await verifyTermination(await signTermination(base, be), { agreement, signedBy: [BE, SN] }, resolve);
    expect(lookups).toEqual([{ nodeId: BE, at: new Date(base.at) }]);
  });

  it('the agreement schema is exported for JSON Schema generation', () => {
    expect(Agreement.meta()?.id).toBe('Agreement');
  });
});
