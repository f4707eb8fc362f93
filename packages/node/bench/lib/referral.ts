/**
 * The referral the node benchmarks send: the same case and the same ~4 KiB of message JSON as
 * packages/protocol/bench/seal-open.ts, so the node figures and the SDK figures describe one
 * workload. Fictional person and organisations only.
 */
import { toTimestamp, type DataCategory, type Purpose } from '@passerelle/protocol';
import type { RecordConsentInput, SendInput } from '../../src/index.js';
import { CONSENT_TEXT_DIGEST } from '../../test/harness/cluster.js';

export const REFERRAL_CATEGORIES: DataCategory[] = [
  'identity',
  'contact',
  'family',
  'education-skills',
  'employment',
  'health',
  'vulnerability',
  'return-travel',
  'reintegration-plan',
];

export const REFERRAL_BODY = {
  subject: 'case-be-2026-0042',
  services: ['reintegration-support', 'medical', 'social'],
  urgency: 'routine',
  reasonCode: 'pre-departure',
};

export const REFERRAL_DATA: Record<string, unknown> = {
  identity: { givenName: 'Awa', familyName: 'Exemple', dateOfBirth: '1991-04-02', sex: 'female', nationalities: ['SN'], preferredLanguages: ['fr', 'wo'] },
  contact: { phone: '+32 470 00 00 00', email: 'awa@mail.example', preferredChannel: 'through-caseworker' },
  family: {
    household: [
      { relationship: 'child', ageYears: 6, accompanying: true },
      { relationship: 'child', ageYears: 3, accompanying: true },
    ],
    familyInOriginCountry: 'Mother and two sisters in Thiès.',
  },
  'education-skills': {
    education: [{ iscedLevel: 3, field: 'Textiles', completed: true, country: 'SN' }],
    skills: [
      { name: 'tailoring', level: 'advanced' },
      { name: 'bookkeeping', level: 'basic' },
      { name: 'sales', level: 'intermediate' },
    ],
    languages: [
      { tag: 'fr', level: 'fluent' },
      { tag: 'wo', level: 'native' },
      { tag: 'nl', level: 'basic' },
    ],
  },
  employment: {
    workHistory: [
      { occupation: 'Tailor', sector: 'Garments', country: 'SN', from: '2012', to: '2019' },
      { occupation: 'Kitchen help', country: 'BE', from: '2023', to: '2024' },
    ],
    currentSituation: 'not-allowed-to-work',
  },
  health: { needs: ['Regular follow-up of a chronic condition; medication available in the origin country to be confirmed.'], followUpRequired: true, fitToTravel: true },
  vulnerability: { indicators: ['single-parent'], notes: 'Two young children travelling with her; needs childcare during training.' },
  'return-travel': { plannedDeparture: '2026-12-15', departureCountry: 'BE', destinationCountry: 'SN', destinationLocality: 'Thiès', arrivalAssistance: true, escortNeeded: false },
  'reintegration-plan': {
    intendedActivities: [
      { dimension: 'economic', kind: 'business', description: 'Reopen a small tailoring workshop with two sewing machines and a stock of fabric; sell school uniforms.' },
      { dimension: 'social', kind: 'community', description: 'Join the local women\u2019s savings group; enrol the elder child in primary school.' },
      { dimension: 'psychosocial', kind: 'counselling', description: 'Follow-up sessions with a counsellor during the first six months after arrival.' },
    ],
    housing: { arrangement: 'family', supportNeeded: true },
    budgetEur: 2500,
    goals: ['Income from the workshop within six months', 'Children in school at the start of term', 'Stable housing within three months'],
  },
};

/** The consent a caseworker of the sending agency records before referring the case. */
export function benchConsent(recipient: string): RecordConsentInput {
  const purposes: Purpose[] = ['referral', 'reintegration-planning'];
  return {
    subject: 'case-be-2026-0042',
    purposes,
    recipients: [recipient],
    categories: REFERRAL_CATEGORIES,
    explicitConsent: ['health', 'vulnerability'],
    collection: {
      method: 'written',
      language: 'fr',
      interpreter: { kind: 'intercultural-mediator', language: 'wo' },
      text: { version: '2026-01', digest: CONSENT_TEXT_DIGEST },
    },
    collectedAt: toTimestamp(Date.now() - 60_000),
    expiresAt: toTimestamp(Date.now() + 180 * 24 * 3600_000),
    collectedBy: { role: 'caseworker', staffRef: 'cw-017' },
  } as RecordConsentInput;
}

export function benchReferral(to: string, agreementId: string, consentId: string): SendInput {
  return { type: 'referral', to, agreementId, consentId, body: REFERRAL_BODY, data: REFERRAL_DATA };
}
