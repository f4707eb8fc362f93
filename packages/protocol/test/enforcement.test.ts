import { beforeAll, describe, expect, it } from 'vitest';
import { createAgreement, signAgreement, signTermination, verifyAgreement, verifyTermination, type Agreement, type NodeKeyResolver } from '../src/agreement.js';
import { signConsent, verifyConsent, type ConsentRecord } from '../src/consent.js';
import { checkFlow, contextFromPayloads, evaluateFlow, type FlowContext, type FlowFacts } from '../src/enforcement.js';
import { isProtocolError } from '../src/errors.js';
import { generateSigningKey, type SigningKeyPair } from '../src/keys.js';
import { MessageTypes } from '../src/messages/message-types.js';

const BE = 'https://accueil.example.be';
const FR = 'https://corridor.example.fr';
const SN = 'https://reintegration.example.sn';

const CONSENT_ID = '0195b7d2-1e4f-7a20-9c31-5d6e7f809a01';

const consent: ConsentRecord = {
  id: CONSENT_ID,
  version: 1,
  subject: 'case-be-2026-0042',
  controller: BE,
  purposes: ['reintegration-planning', 'monitoring'],
  recipients: [SN],
  categories: ['identity', 'contact', 'health', 'reintegration-plan', 'monitoring'],
  explicitConsent: ['health'],
  collection: { method: 'written', language: 'fr', text: { version: 'v3', digest: 'RHK4k5arg_rZE41AtAyZDJScwYK8K6V98Owvy98qNUs' } },
  collectedAt: '2026-03-02T10:30:00Z',
  expiresAt: '2026-09-02T10:30:00Z',
  collectedBy: { role: 'social-worker', staffRef: 'staff-be-117' },
};

let agreement: Agreement;
let be: SigningKeyPair;
let sn: SigningKeyPair;
let resolve: NodeKeyResolver;

beforeAll(async () => {
  [be, sn] = await Promise.all([generateSigningKey(), generateSigningKey()]);
  const keys = new Map([
    [BE, be],
    [SN, sn],
  ]);
  resolve = (nodeId, kid) => (keys.get(nodeId)?.kid === kid ? keys.get(nodeId)!.publicJwk : undefined);
  agreement = createAgreement({
    title: 'Assisted return and reintegration, Belgium - Senegal',
    parties: [
      { node: BE, role: 'reception-agency', name: 'Accueil Exemple Belgique' },
      { node: SN, role: 'reintegration-partner', name: 'Réintégration Exemple Sénégal' },
    ],
    purposes: ['reintegration-planning', 'monitoring'],
    flows: [
      { from: BE, to: SN, messageTypes: [MessageTypes.REFERRAL], categories: ['identity', 'contact', 'health', 'reintegration-plan'], purposes: ['reintegration-planning'] },
      { from: SN, to: BE, messageTypes: [MessageTypes.REINTEGRATION_UPDATE, MessageTypes.PROBLEM_REPORT], categories: ['monitoring'], purposes: ['monitoring'] },
    ],
    onwardReferral: { allowed: false },
    retention: ['identity', 'contact', 'health', 'reintegration-plan', 'monitoring'].map((category) => ({ category, days: 365 })) as Agreement['retention'],
    legalBasis: { basis: 'consent', reference: 'MoU BE-SN/2026/01' },
    validFrom: '2026-01-01T00:00:00Z',
    validUntil: '2028-01-01T00:00:00Z',
    createdAt: '2025-12-15T09:00:00Z',
  });
});

function referral(overrides: Partial<FlowFacts> = {}): FlowFacts {
  return {
    sender: BE,
    recipient: SN,
    messageType: MessageTypes.REFERRAL,
    purpose: 'reintegration-planning',
    categories: ['identity', 'health'],
    createdAt: '2026-03-10T14:00:00Z',
    consentId: CONSENT_ID,
    agreementId: agreement.id,
    ...overrides,
  };
}

function context(overrides: Partial<FlowContext> = {}): FlowContext {
  return { agreement: { agreement, signedBy: [BE, SN] }, consent: { record: consent }, withdrawals: [], now: '2026-03-10T14:00:05Z', ...overrides };
}

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (isProtocolError(e)) return e.code;
    throw e;
  }
}

describe('checkFlow with verified objects', () => {
  it('accepts the results of verifyAgreement, verifyTermination and verifyConsent as they are', async () => {
    const jws = await signAgreement(await signAgreement(agreement, BE, be), SN, sn);
    const verified = await verifyAgreement(jws, resolve, { now: '2026-03-10T14:00:05Z' });
    const verifiedConsent = await verifyConsent(await signConsent(consent, be), resolve);
    expect(() => checkFlow(referral(), context({ agreement: verified, consent: verifiedConsent }))).not.toThrow();

    const t = await verifyTermination(await signTermination({ agreementId: agreement.id, by: SN, at: '2026-03-10T14:00:02Z', reason: 'Office closes' }, sn), verified, resolve);
    const terminated = context({ agreement: { ...verified, terminations: [t.termination] }, consent: verifiedConsent });
    expect(evaluateFlow(referral(), terminated)).toMatchObject({ allowed: false, code: 'AGREEMENT_NOT_IN_FORCE', details: { at: 'now', state: 'terminated' } });
  });

  it('recomputes in-force at createdAt and now, whatever status the verified object carried', async () => {
    const jws = await signAgreement(await signAgreement(agreement, BE, be), SN, sn);
    const verifiedLater = await verifyAgreement(jws, resolve, { now: '2026-06-01T00:00:00Z' });
    expect(evaluateFlow(referral({ createdAt: '2025-12-31T00:00:00Z' }), context({ agreement: verifiedLater }))).toMatchObject({
      allowed: false,
      code: 'AGREEMENT_NOT_IN_FORCE',
      details: { at: 'createdAt', state: 'not-yet-valid' },
    });
  });

  it('throws a ProtocolError carrying the specific code; evaluateFlow returns it', () => {
    const facts = referral({ categories: ['identity', 'contact'], purpose: 'monitoring' });
    expect(() => checkFlow(facts, context())).toThrow(expect.objectContaining({ code: 'AGREEMENT_FLOW_NOT_ALLOWED' }));
    expect(evaluateFlow(facts, context())).toEqual({
      allowed: false,
      code: 'AGREEMENT_FLOW_NOT_ALLOWED',
      message: 'The agreement does not allow this purpose for this flow',
      details: { reason: 'purpose' },
    });
  });

  it('facts that do not match their schema: SCHEMA_INVALID', () => {
    expect(codeOf(() => checkFlow({ ...referral(), sender: 'accueil.example.be' }, context()))).toBe('SCHEMA_INVALID');
    expect(codeOf(() => checkFlow({ ...referral(), extra: true } as FlowFacts, context()))).toBe('SCHEMA_INVALID');
  });
});

describe('decision order', () => {
  it('reports the first failing rule, rule by rule', () => {
    // Start from a message that fails everything it can, and repair one rule at a time.
    const facts = referral({ categories: ['identity', 'health', 'reintegration-plan'] });
    let record: ConsentRecord = {
      ...consent,
      controller: FR,
      collectedAt: '2026-03-11T00:00:00Z',
      expiresAt: '2026-03-12T00:00:00Z',
      recipients: [BE],
      purposes: ['monitoring'],
      categories: ['identity', 'health'],
      explicitConsent: [],
      minor: { isMinor: true },
    };
    const steps: [string, (r: ConsentRecord) => ConsentRecord][] = [
      ['CONSENT_SIGNER_INVALID', (r) => ({ ...r, controller: BE })],
      ['CONSENT_NOT_YET_VALID', (r) => ({ ...r, collectedAt: '2026-03-02T10:30:00Z', expiresAt: '2026-03-10T14:00:03Z' })],
      ['CONSENT_EXPIRED', (r) => ({ ...r, expiresAt: '2026-09-02T10:30:00Z' })],
      ['CONSENT_WITHDRAWN', (r) => ({ ...r, id: '0195b7d2-1e4f-7a20-9c31-5d6e7f809a77' })],
      ['CONSENT_RECIPIENT_NOT_COVERED', (r) => ({ ...r, recipients: [SN] })],
      ['CONSENT_PURPOSE_NOT_COVERED', (r) => ({ ...r, purposes: ['reintegration-planning'] })],
      ['CONSENT_CATEGORY_NOT_COVERED', (r) => ({ ...r, categories: ['identity', 'health', 'reintegration-plan'] })],
      ['CONSENT_SPECIAL_CATEGORY_NOT_EXPLICIT', (r) => ({ ...r, explicitConsent: ['health'] })],
      ['CONSENT_MINOR_WITHOUT_GUARDIAN', (r) => ({ ...r, minor: { isMinor: false } })],
    ];
    const withdrawals = [{ consentId: CONSENT_ID, at: '2026-03-05T00:00:00Z' }];
    for (const [code, repair] of steps) {
      const f = { ...facts, consentId: record.id };
      expect(evaluateFlow(f, context({ consent: { record }, withdrawals }))).toMatchObject({ allowed: false, code });
      record = repair(record);
    }
    expect(evaluateFlow({ ...facts, consentId: record.id }, context({ consent: { record }, withdrawals }))).toEqual({ allowed: true });
  });

  it('agreement rules come before any consent rule', () => {
    const noConsent = context({ consent: undefined });
    expect(codeOf(() => checkFlow(referral({ agreementId: '0194a3c0-5b2e-7d41-8a6f-1c2d3e4f5a99' }), noConsent))).toBe('AGREEMENT_MISSING');
    expect(codeOf(() => checkFlow(referral(), context({ consent: undefined, agreement: { agreement, signedBy: [SN] } })))).toBe('AGREEMENT_NOT_IN_FORCE');
    expect(codeOf(() => checkFlow(referral({ messageType: MessageTypes.CASE_CLOSURE }), noConsent))).toBe('AGREEMENT_FLOW_NOT_ALLOWED');
    expect(codeOf(() => checkFlow(referral(), noConsent))).toBe('CONSENT_MISSING');
  });
});

describe('which messages need consent', () => {
  it('a problem report with no categories needs none; with categories it does', () => {
    const report = referral({ sender: SN, recipient: BE, messageType: MessageTypes.PROBLEM_REPORT, purpose: 'monitoring', categories: [], consentId: undefined });
    expect(evaluateFlow(report, context({ consent: undefined }))).toEqual({ allowed: true });
    expect(evaluateFlow({ ...report, categories: ['monitoring'] }, context({ consent: undefined }))).toMatchObject({ code: 'CONSENT_MISSING' });
  });

  it('a reintegration update needs consent even with no categories', () => {
    const update = referral({ sender: SN, recipient: BE, messageType: MessageTypes.REINTEGRATION_UPDATE, purpose: 'monitoring', categories: [], consentId: undefined });
    expect(evaluateFlow(update, context({ consent: undefined }))).toMatchObject({ code: 'CONSENT_MISSING' });
    // Reporting back to the controller under its own consent record.
    expect(evaluateFlow({ ...update, consentId: CONSENT_ID, categories: ['monitoring'] }, context())).toEqual({ allowed: true });
  });

  it('a withdrawal of the consent does not stop the consent-withdrawal message itself', () => {
    const withdrawal = referral({ messageType: MessageTypes.CONSENT_WITHDRAWAL, purpose: 'case-coordination', categories: [] });
    const ctx = context({ withdrawals: [{ consentId: CONSENT_ID, at: '2026-03-09T00:00:00Z' }], agreement: { agreement, signedBy: [BE] } });
    expect(evaluateFlow(withdrawal, ctx)).toEqual({ allowed: true });
  });
});

describe('contextFromPayloads', () => {
  it('builds a context from plain payloads', () => {
    const ctx = contextFromPayloads({ agreement, agreementSignedBy: [BE, SN], consent, withdrawals: [], now: '2026-03-10T14:00:05Z' });
    expect(ctx.agreement?.agreement).toEqual(agreement);
    expect(ctx.consent?.record).toEqual(consent);
    expect(evaluateFlow(referral(), ctx)).toEqual({ allowed: true });
  });

  it('refuses malformed payloads with the code of the object', () => {
    const now = '2026-03-10T14:00:05Z';
    expect(codeOf(() => contextFromPayloads({ agreement: { ...agreement, version: 0 }, now }))).toBe('AGREEMENT_INVALID');
    expect(codeOf(() => contextFromPayloads({ agreement, terminations: [{ agreementId: agreement.id }], now }))).toBe('AGREEMENT_INVALID');
    expect(codeOf(() => contextFromPayloads({ consent: { ...consent, subject: 'Awa Example' }, now }))).toBe('CONSENT_INVALID');
    expect(codeOf(() => contextFromPayloads({ withdrawals: [{ consentId: CONSENT_ID }], now }))).toBe('SCHEMA_INVALID');
    expect(codeOf(() => contextFromPayloads({ now: 'yesterday' }))).toBe('SCHEMA_INVALID');
  });
});
