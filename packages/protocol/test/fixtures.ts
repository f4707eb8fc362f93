import {
  buildReferral,
  generateEncryptionKey,
  generateSigningKey,
  type EncryptionKeyPair,
  type PublicSigningJwk,
  type SigningKeyPair,
} from '../src/index.js';

export interface Org {
  id: string;
  sig: SigningKeyPair;
  enc: EncryptionKeyPair;
}

export async function org(id: string): Promise<Org> {
  return { id, sig: await generateSigningKey(), enc: await generateEncryptionKey() };
}

export function resolverFor(...orgs: Org[]) {
  return (iss: string, kid: string): PublicSigningJwk | undefined => {
    const o = orgs.find((x) => x.id === iss);
    return o && o.sig.kid === kid ? o.sig.publicJwk : undefined;
  };
}

export const AGREEMENT_ID = '0192f3a0-0000-7000-8000-000000000001';
export const CONSENT_ID = '0192f3a0-0000-7000-8000-000000000002';

export function sampleReferral(from: Org, to: Org, created = new Date()) {
  return buildReferral({
    from: from.id,
    to: to.id,
    agreementId: AGREEMENT_ID,
    consentId: CONSENT_ID,
    created,
    body: { subject: 'case-be-2026-0042', services: ['reintegration-support', 'medical'], urgency: 'routine', reasonCode: 'pre-departure' },
    data: {
      identity: { givenName: 'Amina', familyName: 'Exemple', dateOfBirth: '1994-03-12', nationalities: ['SN'], preferredLanguages: ['fr', 'wo'] },
      contact: { phone: '+32 470 00 00 00' },
      health: { needs: ['Follow-up for a chronic condition'], followUpRequired: true },
      'return-travel': { plannedDeparture: '2026-12-15', destinationCountry: 'SN', destinationLocality: 'Thiès' },
    },
  });
}
