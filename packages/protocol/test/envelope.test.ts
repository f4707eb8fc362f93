import { beforeAll, describe, expect, it } from 'vitest';
import {
  b64uJson,
  fromB64u,
  fromUtf8,
  open,
  present,
  ProtocolError,
  seal,
  signCompact,
  signMessage,
  verifySdJwtMessage,
  joinSdJwt,
  buildReferral,
  MessageTypes,
  verifyCompactWithNoble,
} from '../src/index.js';
import { AGREEMENT_ID, CONSENT_ID, org, resolverFor, sampleReferral, type Org } from './fixtures.js';

let be: Org, sn: Org, fr: Org;
beforeAll(async () => {
  be = await org('https://accueil.example.be');
  sn = await org('https://reintegration.example.sn');
  fr = await org('https://corridor.example.fr');
});

const openAs = (to: Org, jwe: string, extra: Partial<Parameters<typeof open>[1]> = {}) =>
  open(jwe, {
    self: to.id,
    decryptionKey: (kid) => (kid === to.enc.kid ? to.enc : undefined),
    resolveSenderKey: resolverFor(be, sn, fr),
    ...extra,
  });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e;
  }
  return 'OK';
}

describe('seal and open', () => {
  it('round-trips a referral with every disclosure', async () => {
    const msg = sampleReferral(be, sn);
    expect(msg.header.categories).toEqual(['identity', 'contact', 'health', 'return-travel']);
    const sealed = await seal(msg, { signingKey: be.sig, recipientKey: sn.enc.publicJwk as never });
    const opened = await openAs(sn, sealed.jwe, { expectedSender: be.id });
    expect(opened.header).toEqual(msg.header);
    expect(opened.data).toEqual(msg.data);
    expect(opened.body).toEqual(msg.body);
    expect(opened.digest).toBe(sealed.digest);
    expect(await verifyCompactWithNoble(opened.jwt, be.sig.publicJwk)).toBe(true);
  });

  it('keeps personal data out of the signed part', async () => {
    const { jwt } = await signMessage(sampleReferral(be, sn), be.sig);
    const payload = fromUtf8(fromB64u(jwt.split('.')[1]!));
    expect(payload).not.toContain('Amina');
    expect(payload).not.toContain('chronic');
    expect(JSON.parse(payload).data.health._sd).toHaveLength(2);
  });

  it('verifies with none or some of the disclosures and derives categories from structure', async () => {
    const { jwt, sdJwt } = await signMessage(sampleReferral(be, sn), be.sig);
    const bare = await verifySdJwtMessage(joinSdJwt(jwt, []), { resolveSenderKey: resolverFor(be) });
    expect(bare.data).toEqual({ identity: {}, contact: {}, health: {}, 'return-travel': {} });
    expect(bare.header.categories).toEqual(['identity', 'contact', 'health', 'return-travel']);
    const full = await verifySdJwtMessage(sdJwt, { resolveSenderKey: resolverFor(be) });
    const subset = present(full, { identity: ['givenName'], 'return-travel': true });
    const partial = await verifySdJwtMessage(joinSdJwt(subset.jwt, subset.disclosures), { resolveSenderKey: resolverFor(be) });
    expect(partial.data).toEqual({
      identity: { givenName: 'Amina' },
      contact: {},
      health: {},
      'return-travel': { plannedDeparture: '2026-12-15', destinationCountry: 'SN', destinationLocality: 'Thiès' },
    });
  });

  it('passes a consented subset onward with the original signature intact', async () => {
    const sealed = await seal(sampleReferral(be, fr), { signingKey: be.sig, recipientKey: fr.enc.publicJwk as never });
    const received = await openAs(fr, sealed.jwe);
    const subset = present(received, { identity: ['givenName', 'nationalities'] });
    const onward = buildReferral({
      from: fr.id,
      to: sn.id,
      agreementId: AGREEMENT_ID,
      consentId: CONSENT_ID,
      body: received.body as never,
      data: {},
      onward: subset,
      onwardCategories: ['identity'],
    });
    const sealed2 = await seal(onward, { signingKey: fr.sig, recipientKey: sn.enc.publicJwk as never });
    const got = await openAs(sn, sealed2.jwe, { expectedSender: fr.id });
    expect(got.original?.header.from).toBe(be.id);
    expect(got.original?.data.identity).toEqual({ givenName: 'Amina', nationalities: ['SN'] });
    expect(got.header.categories).toEqual(['identity']);
  });

  it('refuses a disclosure smuggled in without provenance', async () => {
    const a = await signMessage(sampleReferral(be, sn), be.sig);
    const other = await signMessage(sampleReferral(be, sn), be.sig);
    const mixed = joinSdJwt(a.jwt, [...a.disclosures.map((d) => d.encoded), other.disclosures[0]!.encoded]);
    expect(await code(verifySdJwtMessage(mixed, { resolveSenderKey: resolverFor(be) }))).toBe('DISCLOSURE_INVALID');
  });

  it('rejects wrong audience, wrong sender, expiry, future dates and foreign keys with their codes', async () => {
    const sealed = await seal(sampleReferral(be, sn), { signingKey: be.sig, recipientKey: sn.enc.publicJwk as never });
    expect(await code(openAs(sn, sealed.jwe, { expectedSender: fr.id }))).toBe('SENDER_MISMATCH');
    expect(await code(openAs(sn, sealed.jwe, { self: fr.id }))).toBe('AUDIENCE_MISMATCH');
    expect(await code(openAs(fr, sealed.jwe))).toBe('DECRYPTION_FAILED');
    expect(await code(openAs(sn, sealed.jwe, { now: new Date(Date.now() + 15 * 24 * 3600 * 1000) }))).toBe('EXPIRED');
    const err = await openAs(sn, sealed.jwe, { now: new Date(Date.now() - 3600 * 1000) }).catch((e: ProtocolError) => e);
    expect(err).toMatchObject({ code: 'CLOCK_SKEW' });
    expect((err as ProtocolError).details?.serverTime).toMatch(/Z$/);
    expect(await code(openAs(sn, sealed.jwe, { resolveSenderKey: () => undefined }))).toBe('KEY_UNKNOWN');
    expect(await code(openAs(sn, sealed.jwe, { expectedTypes: [MessageTypes.PROBLEM_REPORT] }))).toBe('WRONG_TYPE');
  });

  it('detects declared categories that differ from the carried ones', async () => {
    const built = sampleReferral(be, sn);
    expect(Object.isFrozen(built.header)).toBe(true);
    const msg = { ...built, header: { ...built.header, categories: ['identity', 'contact', 'return-travel'] as typeof built.header.categories } };
    expect(await code(seal(msg, { signingKey: be.sig, recipientKey: sn.enc.publicJwk as never }))).toBe('CATEGORIES_MISMATCH');
    // A malicious sender signs a payload whose declared categories omit health.
    const { jwt } = await signMessage(sampleReferral(be, sn), be.sig);
    const payload = JSON.parse(fromUtf8(fromB64u(jwt.split('.')[1]!)));
    payload.categories = ['identity', 'contact', 'return-travel'];
    const forged = await signCompact(payload, be.sig, 'passerelle-referral+sd-jwt');
    expect(await code(verifySdJwtMessage(joinSdJwt(forged, []), { resolveSenderKey: resolverFor(be) }))).toBe('CATEGORIES_MISMATCH');
  });

  it('rejects a message submitted as another type', async () => {
    const { jwt } = await signMessage(sampleReferral(be, sn), be.sig);
    const payload = JSON.parse(fromUtf8(fromB64u(jwt.split('.')[1]!)));
    const relabelled = await signCompact(payload, be.sig, 'passerelle-reintegration-profile+sd-jwt');
    expect(await code(verifySdJwtMessage(joinSdJwt(relabelled, []), { resolveSenderKey: resolverFor(be) }))).toBe('WRONG_TYPE');
  });

  it('refuses unsigned, embedded-key and unknown-crit headers before verification', async () => {
    const { jwt } = await signMessage(sampleReferral(be, sn), be.sig);
    const [, payload, sig] = jwt.split('.');
    const withHeader = (h: object) => joinSdJwt(`${b64uJson(h)}.${payload}.${sig}`, []);
    const opts = { resolveSenderKey: resolverFor(be) };
    expect(await code(verifySdJwtMessage(withHeader({ alg: 'none', typ: 'passerelle-referral+sd-jwt', kid: be.sig.kid }), opts))).toBe('UNSUPPORTED_ALGORITHM');
    expect(await code(verifySdJwtMessage(withHeader({ alg: 'EdDSA', typ: 'passerelle-referral+sd-jwt', kid: be.sig.kid, jwk: be.sig.publicJwk }), opts))).toBe('FORBIDDEN_HEADER');
    expect(await code(verifySdJwtMessage(withHeader({ alg: 'EdDSA', typ: 'passerelle-referral+sd-jwt', kid: be.sig.kid, crit: ['x'], x: 1 }), opts))).toBe('FORBIDDEN_HEADER');
  });

  it('builder refuses schema violations with the field path', async () => {
    expect(() =>
      buildReferral({ from: be.id, to: sn.id, agreementId: AGREEMENT_ID, consentId: CONSENT_ID, body: { subject: 'x', services: [], urgency: 'routine', reasonCode: 'other' } as never }),
    ).toThrow(ProtocolError);
  });
});

describe('onward provenance', () => {
  it('refuses a provenance listing a digest the original does not hold', async () => {
    const { sdJwt } = await signMessage(sampleReferral(be, fr), be.sig);
    const received = await verifySdJwtMessage(sdJwt, { resolveSenderKey: resolverFor(be) });
    const subset = present(received, { identity: ['givenName'] });
    const onward = buildReferral({
      from: fr.id,
      to: sn.id,
      agreementId: AGREEMENT_ID,
      consentId: CONSENT_ID,
      body: received.body as never,
      onward: subset,
      onwardCategories: ['identity'],
    });
    const { jwt } = await signMessage(onward, fr.sig);
    const payload = JSON.parse(fromUtf8(fromB64u(jwt.split('.')[1]!)));
    payload.provenance.disclosed.push('A'.repeat(43));
    const forged = await signCompact(payload, fr.sig, 'passerelle-referral+sd-jwt');
    const err = await verifySdJwtMessage(joinSdJwt(forged, subset.disclosures), { resolveSenderKey: resolverFor(be, fr) }).catch((e: ProtocolError) => e);
    expect(err).toMatchObject({ code: 'PROVENANCE_INVALID' });
  });
});
