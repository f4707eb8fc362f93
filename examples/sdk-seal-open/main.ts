/**
 * The SDK on its own: a Belgian reception agency seals a referral for a reintegration partner in
 * Senegal; the partner opens it, checks it, and answers with a signed receipt. All organisations
 * and people here are fictional.
 */
import {
  buildReferral,
  generateEncryptionKey,
  generateSigningKey,
  joinSdJwt,
  open,
  present,
  seal,
  signReceipt,
  verifyReceipt,
  verifySdJwtMessage,
  type PublicSigningJwk,
} from '@passerelle/protocol';

const step = (n: number, text: string) => console.log(`${String(n).padStart(2)}. ${text}`);

const host = { id: 'https://accueil.example.be', sig: await generateSigningKey(), enc: await generateEncryptionKey() };
const partner = { id: 'https://reintegration.example.sn', sig: await generateSigningKey(), enc: await generateEncryptionKey() };
const keysOf = new Map<string, PublicSigningJwk>([
  [host.sig.kid, host.sig.publicJwk],
  [partner.sig.kid, partner.sig.publicJwk],
]);
const resolveSenderKey = (_iss: string, kid: string) => keysOf.get(kid);

step(1, `${host.id} builds a referral for ${partner.id}`);
const referral = buildReferral({
  from: host.id,
  to: partner.id,
  agreementId: '0193a000-0000-7000-8000-00000000a001',
  consentId: '0193a000-0000-7000-8000-00000000c001',
  purpose: 'reintegration-planning',
  body: { subject: 'case-be-2026-0042', services: ['reintegration-support'], urgency: 'routine', reasonCode: 'pre-departure' },
  data: {
    identity: { givenName: 'Awa', familyName: 'Exemple', preferredLanguages: ['fr', 'wo'] },
    'education-skills': { skills: [{ name: 'tailoring', level: 'advanced' }] },
    'return-travel': { plannedDeparture: '2026-12-15', destinationCountry: 'SN', destinationLocality: 'Thiès' },
  },
});
console.log(`    id ${referral.header.id}, categories derived from its fields: ${referral.header.categories.join(', ')}`);

const sealed = await seal(referral, { signingKey: host.sig, recipientKey: partner.enc.publicJwk as typeof partner.enc.publicJwk & { kid: string } });
step(2, `sealed: signed with ${host.sig.kid.slice(0, 12)}…, encrypted to ${partner.enc.kid.slice(0, 12)}… (${sealed.jwe.length} bytes)`);

const opened = await open(sealed.jwe, {
  self: partner.id,
  expectedSender: host.id,
  decryptionKey: (kid) => (kid === partner.enc.kid ? partner.enc : undefined),
  resolveSenderKey,
});
step(3, `${partner.id} opened it: ${opened.header.type} from ${opened.header.from}, skills: ${JSON.stringify(opened.data['education-skills'])}`);

const receipt = await signReceipt(
  { receiver: partner.id, sender: host.id, messageId: opened.header.id, digest: opened.digest, status: 'accepted' },
  partner.sig,
);
const checked = await verifyReceipt(receipt, { receiver: partner.id, sender: host.id, messageId: referral.header.id, digest: sealed.digest, resolveKey: (kid) => keysOf.get(kid) });
step(4, `receipt verified by ${host.id}: ${checked.status} for digest ${checked.digest.slice(0, 12)}…`);

const auditorView = await verifySdJwtMessage(joinSdJwt(opened.jwt, []), { resolveSenderKey, ignoreExpiry: true });
step(5, `an auditor verifies the signed part with no personal data: categories ${auditorView.header.categories.join(', ')}; identity fields seen: ${Object.keys(auditorView.data.identity as object).length}`);

const subset = present(opened, { 'return-travel': true });
const partial = await verifySdJwtMessage(joinSdJwt(subset.jwt, subset.disclosures), { resolveSenderKey });
step(6, `a presentation with travel details only still verifies under the original signature: ${JSON.stringify(partial.data['return-travel'])}`);
