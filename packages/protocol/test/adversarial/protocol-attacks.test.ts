/**
 * Message- and trust-level attacks (docs/attacks.md, "Protocol (messages and trust)"): a peer that
 * holds valid keys and signs what it likes, a relay that re-encrypts, a replayer, a forger of
 * provenance, receipts, node documents, consents and agreements. Each test names one attack and
 * asserts its stable error code.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  acceptNewer,
  agreementStatus,
  b64u,
  b64uJson,
  buildReferral,
  checkFlow,
  createAgreement,
  createNodeDocument,
  disclosureDigest,
  generateSigningKey,
  joinSdJwt,
  makeDisclosure,
  nodeKeyEntry,
  open,
  present,
  ProtocolError,
  revokeKey,
  rotateNodeDocument,
  seal,
  sha256b64u,
  signAgreement,
  signCompact,
  signConsent,
  signMessage,
  signReceipt,
  signTermination,
  toTimestamp,
  verifyAgreement,
  verifyConsent,
  verifyNodeDocument,
  verifyReceipt,
  verifySdJwtMessage,
  verifyTermination,
  type Agreement,
  type FlowContext,
  type FlowFacts,
  type GeneralJws,
  type NodeDocumentInput,
  type OpenOptions,
  type PublicEncryptionJwk,
  type SigningKeyPair,
  type VerifiedNodeDocument,
} from '../../src/index.js';
import {
  AGREEMENT_ID,
  BE,
  compactParts,
  CONSENT_ID,
  CONSENT_RECORD,
  decodeSegment,
  encryptCompact,
  expectCode,
  FR,
  randomBytes,
  resignPayload,
  sampleReferral,
  segmentOf,
  signWithHeader,
  SN,
  world,
  type Org,
  type World,
} from './helpers.js';

let w: World;

beforeAll(async () => {
  w = await world();
});

const REFERRAL_TYP = 'passerelle-referral+sd-jwt';

function openAs(to: Org, jwe: string, extra: Partial<OpenOptions> = {}) {
  return open(jwe, {
    self: to.id,
    decryptionKey: (kid) => (kid === to.enc.kid ? to.enc : undefined),
    resolveSenderKey: w.resolveNode,
    ...extra,
  });
}

/** Encrypts an SD-JWT to `to` the way any sender (or relay) can. */
function sealSdJwt(sdJwt: string, to: Org): Promise<string> {
  return encryptCompact(sdJwt, to.enc.publicJwk);
}

/** What a peer holding valid keys can do: edit the signed payload and sign it again. */
async function resignedMessage(edit: (payload: Record<string, any>) => Record<string, any>, extraDisclosures: string[] = []): Promise<string> {
  const jwt = await resignPayload(w.message.jwt, w.be.sig, edit);
  return joinSdJwt(jwt, [...w.message.disclosures, ...extraDisclosures]);
}

const recipientKey = (o: Org) => o.enc.publicJwk as PublicEncryptionJwk & { kid: string };

describe('envelope claims', () => {
  it('inner signer is not the authenticated sender (the sender delivers a message another partner signed)', async () => {
    const fromFr = await seal(sampleReferral(w.fr, w.sn), { signingKey: w.fr.sig, recipientKey: recipientKey(w.sn) });
    await expectCode(() => w.openAsSn(fromFr.jwe, { expectedSender: w.be.id }), 'SENDER_MISMATCH');
    // The control: the same message delivered by its signer opens.
    await expect(w.openAsSn(fromFr.jwe, { expectedSender: w.fr.id })).resolves.toBeDefined();
  });

  it("iss names the authenticated sender but another partner's key signed", async () => {
    const { sdJwt } = await signMessage(sampleReferral(w.be, w.sn), w.fr.sig);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn), { expectedSender: w.be.id }), 'KEY_UNKNOWN');
  });

  it('a message addressed to another node, encrypted to us', async () => {
    const { sdJwt } = await signMessage(sampleReferral(w.be, w.fr), w.be.sig);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'AUDIENCE_MISMATCH');
  });

  it('a message relayed by its recipient, decrypted and re-encrypted to a third node', async () => {
    const sealed = await seal(sampleReferral(w.be, w.fr), { signingKey: w.be.sig, recipientKey: recipientKey(w.fr) });
    const received = await openAs(w.fr, sealed.jwe, { expectedSender: w.be.id });
    const relayed = await sealSdJwt(joinSdJwt(received.jwt, received.disclosures), w.sn);
    await expectCode(() => openAs(w.sn, relayed, { expectedSender: w.fr.id }), 'SENDER_MISMATCH');
    // Without transport authentication (messages travelling as files), the audience still refuses it.
    await expectCode(() => openAs(w.sn, relayed), 'AUDIENCE_MISMATCH');
  });

  it('a message replayed after its expiry', async () => {
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    const short = buildReferral({ ...referralInput(w.be, w.sn, created), ttlSeconds: 60 });
    const sealed = await seal(short, { signingKey: w.be.sig, recipientKey: recipientKey(w.sn) });
    await expect(w.openAsSn(sealed.jwe, { now: new Date(created.getTime() + 59_000) })).resolves.toBeDefined();
    await expectCode(() => w.openAsSn(sealed.jwe, { now: new Date(created.getTime() + 60_000) }), 'EXPIRED');
    await expectCode(() => w.openAsSn(w.sealed.jwe, { now: new Date(Date.now() + 15 * 86_400_000) }), 'EXPIRED');
  });

  it('a creation time beyond the clock-skew bound, answered with the server time', async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const within = await seal(sampleReferral(w.be, w.sn, new Date(now.getTime() + 300_000)), { signingKey: w.be.sig, recipientKey: recipientKey(w.sn) });
    await expect(w.openAsSn(within.jwe, { now })).resolves.toBeDefined();
    const beyond = await seal(sampleReferral(w.be, w.sn, new Date(now.getTime() + 301_000)), { signingKey: w.be.sig, recipientKey: recipientKey(w.sn) });
    const error = await expectCode(() => w.openAsSn(beyond.jwe, { now }), 'CLOCK_SKEW');
    expect(error.details).toEqual({ serverTime: toTimestamp(now) });
    await expectCode(() => w.openAsSn(within.jwe, { now, maxSkewSeconds: 60 }), 'CLOCK_SKEW');
  });

  it('categories under-declared in a validly signed message', async () => {
    const sdJwt = await resignedMessage((p) => ({ ...p, categories: p.categories.filter((c: string) => c !== 'health') }));
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'CATEGORIES_MISMATCH');
    // Withholding the disclosures does not help: categories follow the signed structure.
    await expectCode(() => verifySdJwtMessage(`${sdJwt.split('~')[0]}~`, { resolveSenderKey: w.resolveNode }), 'CATEGORIES_MISMATCH');
  });

  it('categories over-declared or repeated in a validly signed message', async () => {
    for (const categories of [
      ['identity', 'contact', 'health', 'return-travel', 'legal-status'],
      ['identity', 'identity', 'contact', 'health', 'return-travel'],
    ]) {
      const sdJwt = await resignedMessage((p) => ({ ...p, categories }));
      await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'CATEGORIES_MISMATCH');
    }
  });

  it('an expiry beyond the largest representable date, validly signed', async () => {
    for (const exp of [8_640_000_000_001, Number.MAX_SAFE_INTEGER]) {
      const sdJwt = await resignedMessage((p) => ({ ...p, exp }));
      await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'SCHEMA_INVALID');
    }
  });

  it('an unknown claim smuggled into a validly signed payload', async () => {
    const sdJwt = await resignedMessage((p) => ({ ...p, cnf: { jwk: w.fr.sig.publicJwk } }));
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'SCHEMA_INVALID');
  });

  it('a hash algorithm other than sha-256 for the disclosures', async () => {
    const sdJwt = await resignedMessage((p) => ({ ...p, _sd_alg: 'md5' }));
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'UNSUPPORTED_ALGORITHM');
  });
});

function referralInput(from: Org, to: Org, created = new Date()) {
  return {
    from: from.id,
    to: to.id,
    agreementId: AGREEMENT_ID,
    consentId: CONSENT_ID,
    created,
    body: { subject: 'case-be-2026-0042', services: ['reintegration-support' as const], urgency: 'routine' as const, reasonCode: 'pre-departure' as const },
    data: { identity: { givenName: 'Amina', familyName: 'Exemple' } },
  };
}

describe('selective disclosures', () => {
  it('control: withholding disclosures is allowed and keeps the signature valid', async () => {
    const full = await verifySdJwtMessage(w.message.sdJwt, { resolveSenderKey: w.resolveNode });
    const subset = present(full, { identity: ['givenName'] });
    const partial = await verifySdJwtMessage(joinSdJwt(subset.jwt, subset.disclosures), { resolveSenderKey: w.resolveNode });
    expect(partial.data.identity).toEqual({ givenName: 'Amina' });
  });

  it('a disclosure for a digest that is not in the message', async () => {
    const other = await signMessage(sampleReferral(w.be, w.sn), w.be.sig);
    const sdJwt = joinSdJwt(w.message.jwt, [...w.message.disclosures, other.disclosures[0]!.encoded]);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('the same disclosure twice', async () => {
    const sdJwt = joinSdJwt(w.message.jwt, [...w.message.disclosures, w.message.disclosures[0]!]);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('a disclosure re-encoded (same JSON text with other whitespace, so another digest)', async () => {
    const [first, ...rest] = w.message.disclosures;
    const json = new TextDecoder().decode(Uint8Array.from(atob(first!.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)));
    const respelt = segmentOf(JSON.stringify(JSON.parse(json), null, 1));
    await expectCode(async () => w.openAsSn(await sealSdJwt(joinSdJwt(w.message.jwt, [respelt, ...rest]), w.sn)), 'DISCLOSURE_INVALID');
  });

  it.each(['_sd', '...', '_sd_alg', '__proto__'])('a disclosure claiming the reserved name %j, its digest signed', async (name) => {
    const d = makeDisclosure(name, name === '__proto__' ? { givenName: 'Forged' } : ['x']);
    const sdJwt = await resignedMessage((p) => {
      p.data.identity._sd.push(d.digest);
      return p;
    }, [d.encoded]);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('an array-element disclosure (two elements), its digest signed', async () => {
    const encoded = segmentOf(JSON.stringify([b64u(randomBytes(16)), 'SN']));
    const sdJwt = await resignedMessage((p) => {
      p.data.identity._sd.push(disclosureDigest(encoded));
      return p;
    }, [encoded]);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('a disclosure with a salt shorter than 128 bits, its digest signed', async () => {
    const d = makeDisclosure('nickname', 'A', 'c2FsdA');
    const sdJwt = await resignedMessage((p) => {
      p.data.identity._sd.push(d.digest);
      return p;
    }, [d.encoded]);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('the same digest listed twice in one section', async () => {
    const sdJwt = await resignedMessage((p) => {
      p.data.identity._sd.push(p.data.identity._sd[0]);
      return p;
    });
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('one digest placed in two categories', async () => {
    const sdJwt = await resignedMessage((p) => {
      p.data.contact._sd.push(p.data.identity._sd[0]);
      return p;
    });
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('two disclosures for the same claim name in one section', async () => {
    const d = makeDisclosure('givenName', 'Autre');
    const sdJwt = await resignedMessage((p) => {
      p.data.identity._sd.push(d.digest);
      return p;
    }, [d.encoded]);
    await expectCode(async () => w.openAsSn(await sealSdJwt(sdJwt, w.sn)), 'DISCLOSURE_INVALID');
  });

  it('a key-binding JWT appended after the last disclosure', async () => {
    await expectCode(() => verifySdJwtMessage(`${w.message.sdJwt}${w.receipt.token}`, { resolveSenderKey: w.resolveNode }), 'MALFORMED');
  });
});

describe('onward referral and provenance', () => {
  let received: Awaited<ReturnType<typeof openAs>>;

  beforeAll(async () => {
    const sealed = await seal(sampleReferral(w.be, w.fr), { signingKey: w.be.sig, recipientKey: recipientKey(w.fr) });
    received = await openAs(w.fr, sealed.jwe, { expectedSender: w.be.id });
  });

  function onward(subset: { jwt: string; disclosures: string[] }, from = w.fr, to = w.sn) {
    return buildReferral({
      from: from.id,
      to: to.id,
      agreementId: AGREEMENT_ID,
      consentId: CONSENT_ID,
      body: received.body as never,
      data: {},
      onward: subset,
      onwardCategories: ['identity'],
    });
  }

  async function sendOnward(subset: { jwt: string; disclosures: string[] }) {
    return (await seal(onward(subset), { signingKey: w.fr.sig, recipientKey: recipientKey(w.sn) })).jwe;
  }

  it('control: a consented subset passed on verifies with its provenance', async () => {
    const got = await openAs(w.sn, await sendOnward(present(received, { identity: ['givenName'] })), { expectedSender: w.fr.id });
    expect(got.original?.header.from).toBe(w.be.id);
    expect(got.original?.data.identity).toEqual({ givenName: 'Amina' });
  });

  it('the original JWT tampered (payload edited, original signature kept)', async () => {
    const subset = present(received, { identity: ['givenName'] });
    const [h, payload, s] = compactParts(subset.jwt);
    const edited = b64uJson({ ...decodeSegment(payload), purpose: 'case-coordination' });
    const jwe = await sendOnward({ jwt: `${h}.${edited}.${s}`, disclosures: subset.disclosures });
    await expectCode(() => openAs(w.sn, jwe, { expectedSender: w.fr.id }), 'PROVENANCE_INVALID');
  });

  it('an "original" fabricated in the name of another partner, signed by an outsider', async () => {
    const fake = await signMessage(sampleReferral(w.be, w.fr), w.mallory.sig);
    const jwe = await sendOnward({ jwt: fake.jwt, disclosures: [fake.disclosures[0]!.encoded] });
    await expectCode(() => openAs(w.sn, jwe, { expectedSender: w.fr.id }), 'PROVENANCE_INVALID');
  });

  it('the disclosed digest list not matching the disclosures passed on', async () => {
    const jwe = await sendOnward(present(received, { identity: ['givenName', 'familyName'] }));
    const got = await openAs(w.sn, jwe, { expectedSender: w.fr.id });
    const jwt = await resignPayload(got.jwt, w.fr.sig, (p) => {
      const prov = p.provenance as { disclosed: string[] };
      return { ...p, provenance: { ...prov, disclosed: prov.disclosed.slice(1) } };
    });
    await expectCode(async () => openAs(w.sn, await sealSdJwt(joinSdJwt(jwt, got.disclosures), w.sn), { expectedSender: w.fr.id }), 'DISCLOSURE_INVALID');
  });

  it("a disclosure from another message listed in the provenance as the original's", async () => {
    const other = await signMessage(sampleReferral(w.be, w.fr), w.be.sig);
    const subset = present(received, { identity: ['givenName'] });
    const jwe = await sendOnward({ jwt: subset.jwt, disclosures: [...subset.disclosures, other.disclosures[1]!.encoded] });
    await expectCode(() => openAs(w.sn, jwe, { expectedSender: w.fr.id }), 'DISCLOSURE_INVALID');
  });

  it('nested provenance (an onward message passed on again as an original)', async () => {
    const first = await openAs(w.sn, await sendOnward(present(received, { identity: ['givenName'] })), { expectedSender: w.fr.id });
    const again = buildReferral({
      from: w.sn.id,
      to: w.be.id,
      agreementId: AGREEMENT_ID,
      consentId: CONSENT_ID,
      body: received.body as never,
      data: {},
      onward: { jwt: first.jwt, disclosures: [] },
    });
    const sealed = await seal(again, { signingKey: w.sn.sig, recipientKey: recipientKey(w.be) });
    await expectCode(() => openAs(w.be, sealed.jwe, { expectedSender: w.sn.id }), 'PROVENANCE_INVALID');
  });

  it('a malformed provenance claim (extra member, missing list)', async () => {
    const got = await openAs(w.sn, await sendOnward(present(received, { identity: ['givenName'] })), { expectedSender: w.fr.id });
    for (const edit of [(prov: object) => ({ ...prov, via: 'https://intrus.example.org' }), (prov: { jwt: string }) => ({ jwt: prov.jwt })]) {
      const jwt = await resignPayload(got.jwt, w.fr.sig, (p) => ({ ...p, provenance: edit(p.provenance as { jwt: string }) }));
      await expectCode(async () => openAs(w.sn, await sealSdJwt(joinSdJwt(jwt, got.disclosures), w.sn), { expectedSender: w.fr.id }), 'PROVENANCE_INVALID');
    }
  });

  it('an onward message declaring no category for the data it passes on', async () => {
    const got = await openAs(w.sn, await sendOnward(present(received, { identity: ['givenName'] })), { expectedSender: w.fr.id });
    const jwt = await resignPayload(got.jwt, w.fr.sig, (p) => ({ ...p, categories: [] }));
    await expectCode(async () => openAs(w.sn, await sealSdJwt(joinSdJwt(jwt, got.disclosures), w.sn), { expectedSender: w.fr.id }), 'CATEGORIES_MISMATCH');
  });

  describe('enforcement (checkFlow)', () => {
    const ORIGIN_ID = '0192f3a0-0000-7000-8000-0000000000b1';

    function agreementBetween(a: string, b: string, id: string, onwardReferral: Agreement['onwardReferral']): Agreement {
      return createAgreement({
        id,
        title: 'Corridor cooperation (example)',
        parties: [
          { node: a, role: 'reception-agency', name: 'Partie A' },
          { node: b, role: 'ngo', name: 'Partie B' },
        ],
        purposes: ['referral'],
        flows: [{ from: a, to: b, messageTypes: ['referral'], categories: ['identity'] }],
        onwardReferral,
        retention: [{ category: 'identity', days: 365 }],
        legalBasis: { basis: 'consent', reference: 'MoU (example)' },
        validFrom: '2026-01-01T00:00:00Z',
        validUntil: '2028-01-01T00:00:00Z',
        createdAt: '2025-12-15T09:00:00Z',
      });
    }

    const facts: FlowFacts = {
      sender: FR,
      recipient: SN,
      messageType: 'referral',
      purpose: 'referral',
      categories: ['identity'],
      createdAt: '2026-03-10T14:00:00Z',
      consentId: CONSENT_ID,
      agreementId: AGREEMENT_ID,
      onward: { originalController: BE, agreementId: ORIGIN_ID },
    };

    function context(options: { recipients?: string[]; onwardReferral?: Agreement['onwardReferral']; origin?: Agreement } = {}): FlowContext {
      const origin = options.origin ?? agreementBetween(BE, FR, ORIGIN_ID, options.onwardReferral ?? { allowed: true, to: [SN] });
      return {
        agreement: { agreement: agreementBetween(FR, SN, AGREEMENT_ID, { allowed: false }), signedBy: [FR, SN] },
        originAgreement: { agreement: origin, signedBy: origin.parties.map((p) => p.node) },
        consent: { record: { ...CONSENT_RECORD, recipients: options.recipients ?? [FR] } },
        withdrawals: [],
        now: '2026-03-10T14:00:05Z',
      };
    }

    const codeOf = (f: FlowFacts, ctx: FlowContext) => {
      try {
        checkFlow(f, ctx);
        return 'allowed';
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        return `${e.code}${e.details?.reason ? `:${String(e.details.reason)}` : ''}`;
      }
    };

    it('control: onward referral allowed by consent and agreement', () => {
      expect(codeOf(facts, context({ recipients: [FR, SN] }))).toBe('allowed');
    });

    it('onward forwarding to an organisation the consent does not name', () => {
      expect(codeOf(facts, context({ recipients: [FR] }))).toBe('ONWARD_NOT_ALLOWED:consent');
    });

    it('onward forwarding to an organisation the origin agreement does not list, or when it forbids onward referral', () => {
      expect(codeOf(facts, context({ recipients: [FR, SN], onwardReferral: { allowed: true, to: ['https://autre.example.fr'] } }))).toBe('ONWARD_NOT_ALLOWED:agreement');
      expect(codeOf(facts, context({ recipients: [FR, SN], onwardReferral: { allowed: false } }))).toBe('ONWARD_NOT_ALLOWED:agreement');
    });

    it('onward forwarding under an origin agreement that is not known', () => {
      expect(codeOf({ ...facts, onward: { originalController: BE, agreementId: '0192f3a0-0000-7000-8000-0000000000ff' } }, context({ recipients: [FR, SN] }))).toBe(
        'ONWARD_NOT_ALLOWED:origin-agreement-missing',
      );
    });

    it('the sender claiming to be the original controller of data it passes on', () => {
      const ctx = context({ recipients: [FR, SN] });
      ctx.consent = { record: { ...CONSENT_RECORD, controller: FR, recipients: [FR, SN] } };
      expect(codeOf({ ...facts, onward: { originalController: FR, agreementId: ORIGIN_ID } }, ctx)).toBe('PROVENANCE_INVALID');
    });

    it('an origin agreement with no flow from the claimed controller to the sender', () => {
      const origin = agreementBetween(FR, BE, ORIGIN_ID, { allowed: true, to: [SN] });
      expect(codeOf(facts, context({ recipients: [FR, SN], origin }))).toBe('PROVENANCE_INVALID');
    });

    it('a consent record swapped for another one than the message names', () => {
      const ctx = context({ recipients: [FR, SN] });
      ctx.consent = { record: { ...CONSENT_RECORD, id: '0192f3a0-0000-7000-8000-0000000000c3', recipients: [FR, SN] } };
      expect(codeOf(facts, ctx)).toBe('CONSENT_MISSING');
    });
  });
});

describe('receipts', () => {
  const options = () => w.receipt.options;
  const input = () => ({ receiver: w.sn.id, sender: w.be.id, messageId: options().messageId, digest: options().digest, status: 'accepted' as const });

  it('control: the genuine receipt verifies', async () => {
    await expect(verifyReceipt(w.receipt.token, options())).resolves.toMatchObject({ status: 'accepted', log: { index: 7 } });
  });

  it('a receipt signed by the wrong key', async () => {
    await expectCode(async () => verifyReceipt(await signReceipt(input(), w.fr.sig), options()), 'KEY_UNKNOWN', 'RECEIPT_INVALID');
    const [h, p] = compactParts(w.receipt.token);
    const bySomeoneElse = await signWithHeader(decodeSegment(h), p, w.mallory.sig);
    await expectCode(() => verifyReceipt(bySomeoneElse, options()), 'SIGNATURE_INVALID', 'RECEIPT_INVALID');
  });

  it('a receipt issued by another node than the one the message went to', async () => {
    const token = await signReceipt({ ...input(), receiver: w.fr.id }, w.fr.sig);
    const anyPartner = (kid: string) => [w.sn, w.fr].find((o) => o.sig.kid === kid)?.sig.publicJwk;
    const error = await expectCode(() => verifyReceipt(token, { ...options(), resolveKey: anyPartner }), 'RECEIPT_INVALID');
    expect(error.message).toMatch(/another node/);
  });

  it('a receipt for another message', async () => {
    const token = await signReceipt({ ...input(), messageId: '0192f3a0-0000-7000-8000-0000000000ab' }, w.sn.sig);
    await expectCode(() => verifyReceipt(token, options()), 'RECEIPT_INVALID');
  });

  it('a receipt for other bytes (the digest of a different JWE)', async () => {
    const token = await signReceipt({ ...input(), digest: await sha256b64u(`${w.sealed.jwe}x`) }, w.sn.sig);
    await expectCode(() => verifyReceipt(token, options()), 'RECEIPT_INVALID');
  });

  it('a receipt addressed to another sender', async () => {
    const token = await signReceipt({ ...input(), sender: w.fr.id }, w.sn.sig);
    await expectCode(() => verifyReceipt(token, options()), 'RECEIPT_INVALID');
  });

  it('a missing receipt (absent, empty, not a string)', async () => {
    for (const token of [undefined, '', null, 42, {}]) await expectCode(() => verifyReceipt(token as never, options()), 'RECEIPT_INVALID');
  });

  it('a receipt payload tampered after signing (rejected turned into accepted)', async () => {
    const rejected = await signReceipt({ ...input(), status: 'rejected', code: 'CONSENT_EXPIRED' }, w.sn.sig);
    const [h, p, s] = compactParts(rejected);
    const { code: _, ...rest } = decodeSegment(p);
    await expectCode(() => verifyReceipt(`${h}.${b64uJson({ ...rest, status: 'accepted' })}.${s}`, options()), 'SIGNATURE_INVALID', 'RECEIPT_INVALID');
  });

  it('a receipt validly signed but malformed (a rejection without a code, an unknown code)', async () => {
    for (const edit of [(p: Record<string, unknown>) => ({ ...p, status: 'rejected' }), (p: Record<string, unknown>) => ({ ...p, status: 'rejected', code: 'ALL_GOOD' })]) {
      const token = await resignPayload(w.receipt.token, w.sn.sig, edit);
      await expectCode(() => verifyReceipt(token, options()), 'RECEIPT_INVALID');
    }
  });
});

describe('node documents', () => {
  const T0 = new Date('2026-03-02T09:00:00Z');
  const HOUR = 3_600_000;
  const DAY = 24 * HOUR;
  const at = (offset: number) => new Date(T0.getTime() + offset);
  let k1: SigningKeyPair;
  let k2: SigningKeyPair;
  let v1: GeneralJws;
  let v1Verified: VerifiedNodeDocument;

  function input(keys: NodeDocumentInput['keys'], overrides: Partial<NodeDocumentInput> = {}): NodeDocumentInput {
    return {
      id: BE,
      name: 'Accueil Exemple Belgique',
      country: 'BE',
      roles: ['reception-agency'],
      inbox: `${BE}/passerelle/inbox`,
      keys,
      messageTypes: ['referral'],
      languages: ['fr', 'nl'],
      issuedAt: toTimestamp(T0),
      expiresAt: toTimestamp(at(30 * DAY)),
      ...overrides,
    };
  }

  beforeAll(async () => {
    [k1, k2] = await Promise.all([generateSigningKey(), generateSigningKey()]);
    v1 = await createNodeDocument(input([nodeKeyEntry(k1, { notBefore: T0 }), nodeKeyEntry(w.be.enc, { notBefore: T0 })]), [k1]);
    v1Verified = await verifyNodeDocument(v1, { now: at(HOUR), pinnedFingerprints: [k1.kid] });
  });

  it('an older, validly signed version that still lists a key revoked since', async () => {
    const v2 = await rotateNodeDocument(v1Verified, {}, { oldKeys: [k1], newKeys: [k2], now: at(DAY), overlapSeconds: 3600 });
    const v2Verified = await verifyNodeDocument(v2, { now: at(DAY + HOUR), known: v1Verified });
    expect(v2Verified.document.keys.find((k) => k.kid === k1.kid)?.revokedAt).toBeDefined();
    const error = await expectCode(() => verifyNodeDocument(v1, { now: at(DAY + 2 * HOUR), known: v2Verified }), 'NODE_DOCUMENT_STALE');
    expect(error.details).toEqual({ knownVersion: 2, version: 1 });
    await expectCode(() => acceptNewer(v2Verified, v1, { now: at(DAY + 2 * HOUR) }), 'NODE_DOCUMENT_STALE');
  });

  it('an expired node document', async () => {
    await expectCode(() => verifyNodeDocument(v1, { now: at(30 * DAY), pinnedFingerprints: [k1.kid] }), 'NODE_DOCUMENT_EXPIRED');
  });

  it('a rotation signed only by the new key', async () => {
    const issuedAt = toTimestamp(at(DAY));
    const keys = revokeKey([...v1Verified.document.keys, nodeKeyEntry(k2, { notBefore: at(DAY) })], k1.kid, { at: at(DAY), reason: 'superseded' });
    const v2 = await createNodeDocument(input(keys, { version: 2, issuedAt, previous: { version: 1, digest: v1Verified.payloadDigest } }), [k2]);
    await expectCode(() => verifyNodeDocument(v2, { now: at(DAY + HOUR), known: v1Verified }), 'ROTATION_INVALID');
  });

  it('a successor for the same node id made entirely by an outsider', async () => {
    const forged = await createNodeDocument(
      input([nodeKeyEntry(w.mallory.sig, { notBefore: at(DAY) })], { version: 9, issuedAt: toTimestamp(at(DAY)), previous: { version: 1, digest: v1Verified.payloadDigest } }),
      [w.mallory.sig],
    );
    await expectCode(() => verifyNodeDocument(forged, { now: at(DAY + HOUR), known: v1Verified }), 'ROTATION_INVALID');
    await expectCode(() => verifyNodeDocument(forged, { now: at(DAY + HOUR), pinnedFingerprints: [k1.kid] }), 'FINGERPRINT_MISMATCH');
  });

  it('two different documents under the same version (equivocation)', async () => {
    const twin = await createNodeDocument(input(v1Verified.document.keys, { name: 'Accueil Exemple Belgique (bis)' }), [k1]);
    await expectCode(() => verifyNodeDocument(twin, { now: at(HOUR), known: v1Verified }), 'NODE_DOCUMENT_INVALID');
  });

  it('a rotation that undoes a revocation', async () => {
    const v2 = await rotateNodeDocument(v1Verified, {}, { oldKeys: [k1], newKeys: [k2], now: at(DAY), overlapSeconds: 3600 });
    const v2Verified = await verifyNodeDocument(v2, { now: at(DAY + HOUR), known: v1Verified });
    const keys = v2Verified.document.keys.map(({ revokedAt: _r, revocationReason: _rr, ...k }) => k) as NodeDocumentInput['keys'];
    const v3 = await createNodeDocument(
      input(keys, { version: 3, issuedAt: toTimestamp(at(2 * DAY)), previous: { version: 2, digest: v2Verified.payloadDigest } }),
      [k1, k2],
    );
    await expectCode(() => verifyNodeDocument(v3, { now: at(2 * DAY + HOUR), known: v2Verified }), 'NODE_DOCUMENT_INVALID');
  });

  it('a document fetched for one node that names another', async () => {
    await expectCode(() => verifyNodeDocument(v1, { now: at(HOUR), pinnedFingerprints: [k1.kid], expectedId: FR }), 'NODE_DOCUMENT_INVALID');
  });

  it('a document publishing a private key', async () => {
    const payload = decodeSegment(v1.payload) as { keys: Record<string, unknown>[] };
    payload.keys[0] = { ...payload.keys[0], jwk: { ...(payload.keys[0]!.jwk as object), d: k1.privateJwk.d } };
    const jws: GeneralJws = { payload: b64uJson(payload), signatures: v1.signatures };
    await expectCode(() => verifyNodeDocument(jws, { now: at(HOUR), pinnedFingerprints: [k1.kid] }), 'KEY_INVALID');
  });

  it('a co-signature of a current key stripped', async () => {
    const both = await createNodeDocument(input([nodeKeyEntry(k1, { notBefore: T0 }), nodeKeyEntry(k2, { notBefore: T0 })]), [k1, k2]);
    const stripped: GeneralJws = { payload: both.payload, signatures: both.signatures.slice(0, 1) };
    await expectCode(() => verifyNodeDocument(stripped, { now: at(HOUR), pinnedFingerprints: [k1.kid] }), 'NODE_DOCUMENT_INVALID');
  });

  it('a document issued in the future beyond the skew bound', async () => {
    const error = await expectCode(() => verifyNodeDocument(v1, { now: at(-HOUR), pinnedFingerprints: [k1.kid] }), 'CLOCK_SKEW');
    expect(error.details).toEqual({ serverTime: toTimestamp(at(-HOUR)) });
  });
});

describe('consent records and agreements', () => {
  it('control: the genuine consent and agreement verify', async () => {
    await expect(verifyConsent(w.consent.jws, w.resolveNode)).resolves.toMatchObject({ record: { controller: BE } });
    await expect(verifyAgreement(w.agreement.jws, w.resolveNode, { now: w.agreement.now })).resolves.toMatchObject({ inForce: true });
  });

  it('a consent signed by someone other than its controller', async () => {
    await expectCode(async () => verifyConsent(await signConsent(w.consent.record, w.fr.sig), w.resolveNode), 'KEY_UNKNOWN', 'CONSENT_INVALID');
    await expectCode(async () => verifyConsent(await signConsent(w.consent.record, w.mallory.sig), w.resolveNode), 'KEY_UNKNOWN', 'CONSENT_INVALID');
  });

  it('a consent tampered after signing (recipients widened, signature kept)', async () => {
    const [h, p, s] = compactParts(w.consent.jws);
    const widened = b64uJson({ ...decodeSegment(p), recipients: [SN, FR, 'https://intrus.example.org'] });
    await expectCode(() => verifyConsent(`${h}.${widened}.${s}`, w.resolveNode), 'SIGNATURE_INVALID', 'CONSENT_INVALID');
  });

  it('a consent widened and re-signed by a recipient', async () => {
    const token = await signCompact({ ...w.consent.record, recipients: [SN, FR] }, w.sn.sig, 'passerelle-consent+jwt');
    await expectCode(() => verifyConsent(token, w.resolveNode), 'KEY_UNKNOWN', 'CONSENT_INVALID');
  });

  it('a consent carrying a name, validly signed by the controller', async () => {
    const token = await signCompact({ ...w.consent.record, name: 'Amina Exemple' }, w.be.sig, 'passerelle-consent+jwt');
    await expectCode(() => verifyConsent(token, w.resolveNode), 'CONSENT_INVALID');
  });

  it('an agreement tampered after signing (a flow added, both signatures kept)', async () => {
    const payload = decodeSegment(w.agreement.jws.payload) as Agreement;
    const tampered = { ...payload, flows: [...payload.flows, { from: SN, to: BE, messageTypes: ['referral'], categories: ['identity'] }] };
    const jws: GeneralJws = { payload: b64uJson(tampered), signatures: w.agreement.jws.signatures };
    await expectCode(() => verifyAgreement(jws, w.resolveNode, { now: w.agreement.now }), 'SIGNATURE_INVALID', 'AGREEMENT_INVALID');
  });

  it('an agreement co-signed by an organisation that is not a party', async () => {
    const jws = await signAgreement(w.agreement.jws, BE, w.fr.sig);
    await expectCode(() => verifyAgreement(jws, w.resolveNode, { now: w.agreement.now }), 'KEY_UNKNOWN', 'AGREEMENT_INVALID');
  });

  it('a signature copied from another agreement', async () => {
    const other = createAgreement({ ...w.agreement.agreement, id: undefined, title: 'Autre accord (exemple)' });
    const otherJws = await signAgreement(other, SN, w.sn.sig);
    const jws: GeneralJws = { payload: w.agreement.jws.payload, signatures: [w.agreement.jws.signatures[0]!, otherJws.signatures[0]!] };
    await expectCode(() => verifyAgreement(jws, w.resolveNode, { now: w.agreement.now }), 'SIGNATURE_INVALID', 'AGREEMENT_INVALID');
  });

  it('a co-signature stripped: the agreement verifies but is not in force, so no flow passes', async () => {
    const jws: GeneralJws = { payload: w.agreement.jws.payload, signatures: w.agreement.jws.signatures.slice(0, 1) };
    const verified = await verifyAgreement(jws, w.resolveNode, { now: w.agreement.now });
    expect(verified).toMatchObject({ inForce: false, state: 'awaiting-signatures', missingSignatures: [SN] });
    expect(agreementStatus(verified, [], w.agreement.now).inForce).toBe(false);
    const facts: FlowFacts = {
      sender: BE,
      recipient: SN,
      messageType: 'referral',
      purpose: 'referral',
      categories: ['identity'],
      createdAt: '2026-03-10T13:00:00Z',
      consentId: CONSENT_ID,
      agreementId: verified.agreement.id,
    };
    const error = await expectCode(
      () => checkFlow(facts, { agreement: verified, consent: { record: w.consent.record }, withdrawals: [], now: w.agreement.now }),
      'AGREEMENT_NOT_IN_FORCE',
    );
    expect(error.details).toMatchObject({ state: 'awaiting-signatures' });
  });

  it('a termination forged by an organisation that is not a party', async () => {
    const token = await signTermination({ agreementId: w.agreement.agreement.id, by: FR, at: '2026-04-01T00:00:00Z', reason: 'Forged' }, w.fr.sig);
    await expectCode(() => verifyTermination(token, w.agreement.agreement, w.resolveNode), 'AGREEMENT_INVALID');
  });

  it("a termination in one party's name signed with the other party's key", async () => {
    const token = await signTermination({ agreementId: w.agreement.agreement.id, by: SN, at: '2026-04-01T00:00:00Z', reason: 'Forged' }, w.be.sig);
    await expectCode(() => verifyTermination(token, w.agreement.agreement, w.resolveNode), 'KEY_UNKNOWN', 'AGREEMENT_INVALID');
  });
});
