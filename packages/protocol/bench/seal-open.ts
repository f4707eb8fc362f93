/**
 * Seal and open throughput for a ~4 KiB referral, beside raw jose sign+encrypt and
 * decrypt+verify of a payload of the same size, measured in the same run: rounds interleave SDK and
 * raw, each round's ratio compares neighbours run under the same machine conditions, and the median
 * round (throughput) and the median ratio are reported. Prints the figures and writes them to bench-results/protocol-seal-open.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { CompactEncrypt, CompactSign, compactDecrypt, compactVerify } from 'jose';
import {
  buildReferral,
  cryptoKeyFor,
  generateEncryptionKey,
  generateSigningKey,
  open,
  seal,
  signMessage,
  fromB64u,
  utf8,
  type Message,
  type PublicEncryptionJwk,
} from '@passerelle/protocol';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 11);
const PER_ROUND = Number(process.env.BENCH_ITERATIONS ?? 400);
// Operations kept in flight: WebCrypto runs on libuv's thread pool, so a node processing traffic
// overlaps its JavaScript with the crypto of other messages; both sides are measured the same way.
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

const host = { id: 'https://accueil.example.be', sig: await generateSigningKey(), enc: await generateEncryptionKey() };
const partner = { id: 'https://reintegration.example.sn', sig: await generateSigningKey(), enc: await generateEncryptionKey() };
const recipientKey = partner.enc.publicJwk as PublicEncryptionJwk & { kid: string };

function referral(): Message {
  return buildReferral({
    from: host.id,
    to: partner.id,
    agreementId: '0193a000-0000-7000-8000-00000000a001',
    consentId: '0193a000-0000-7000-8000-00000000c001',
    body: { subject: 'case-be-2026-0042', services: ['reintegration-support', 'medical', 'social'], urgency: 'routine', reasonCode: 'pre-departure' },
    data: {
      identity: { givenName: 'Awa', familyName: 'Exemple', dateOfBirth: '1991-04-02', sex: 'female', nationalities: ['SN'], preferredLanguages: ['fr', 'wo'] },
      contact: { phone: '+32 470 00 00 00', email: 'awa@mail.example', preferredChannel: 'through-caseworker' },
      family: { household: [{ relationship: 'child', ageYears: 6, accompanying: true }, { relationship: 'child', ageYears: 3, accompanying: true }], familyInOriginCountry: 'Mother and two sisters in Thiès.' },
      'education-skills': {
        education: [{ iscedLevel: 3, field: 'Textiles', completed: true, country: 'SN' }],
        skills: [{ name: 'tailoring', level: 'advanced' }, { name: 'bookkeeping', level: 'basic' }, { name: 'sales', level: 'intermediate' }],
        languages: [{ tag: 'fr', level: 'fluent' }, { tag: 'wo', level: 'native' }, { tag: 'nl', level: 'basic' }],
      },
      employment: { workHistory: [{ occupation: 'Tailor', sector: 'Garments', country: 'SN', from: '2012', to: '2019' }, { occupation: 'Kitchen help', country: 'BE', from: '2023', to: '2024' }], currentSituation: 'not-allowed-to-work' },
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
    },
  });
}

const message = referral();
const plainSize = JSON.stringify({ header: message.header, body: message.body, data: message.data }).length;
// The baseline signs and encrypts the same number of bytes as the SDK does: a payload as long as the
// issuer-signed JWT's payload, and a plaintext as long as the whole SD-JWT (JWT plus disclosures).
const signed = await signMessage(message, host.sig);
const signedPayloadBytes = fromB64u(signed.jwt.split('.')[1]!).length;
const rawPayload = utf8('x'.repeat(signedPayloadBytes));
const disclosurePadding = '~'.repeat(signed.sdJwt.length - signed.jwt.length);
const sigKey = await cryptoKeyFor(host.sig.privateJwk, 'EdDSA');
const sigPub = await cryptoKeyFor(host.sig.publicJwk, 'EdDSA');
const encPub = await cryptoKeyFor(partner.enc.publicJwk, 'ECDH-ES+A256KW');
const encPriv = await cryptoKeyFor(partner.enc.privateJwk, 'ECDH-ES+A256KW');

const sealed = await seal(message, { signingKey: host.sig, recipientKey });
const rawJwe = await new CompactEncrypt(utf8((await new CompactSign(rawPayload).setProtectedHeader({ alg: 'EdDSA', typ: 't', kid: host.sig.kid }).sign(sigKey)) + disclosurePadding))
  .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: partner.enc.kid })
  .encrypt(encPub);

const openOptions = {
  self: partner.id,
  expectedSender: host.id,
  decryptionKey: (kid: string) => (kid === partner.enc.kid ? partner.enc : undefined),
  resolveSenderKey: (_iss: string, kid: string) => (kid === host.sig.kid ? host.sig.publicJwk : undefined),
};

const cases = {
  sdkSeal: () => seal(message, { signingKey: host.sig, recipientKey }),
  rawSignEncrypt: async () => {
    const jws = await new CompactSign(rawPayload).setProtectedHeader({ alg: 'EdDSA', typ: 't', kid: host.sig.kid }).sign(sigKey);
    return new CompactEncrypt(utf8(jws + disclosurePadding)).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: partner.enc.kid }).encrypt(encPub);
  },
  sdkOpen: () => open(sealed.jwe, openOptions),
  rawDecryptVerify: async () => {
    const { plaintext } = await compactDecrypt(rawJwe, encPriv);
    const text = new TextDecoder().decode(plaintext);
    return compactVerify(text.slice(0, text.indexOf('~')), sigPub);
  },
} as const;
type CaseName = keyof typeof cases;

async function round(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let next = 0;
  const lane = async () => {
    while (next++ < PER_ROUND) await fn();
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return PER_ROUND / ((performance.now() - start) / 1000);
}

for (const fn of Object.values(cases)) for (let i = 0; i < 50; i++) await fn(); // warm-up
const samples: Record<CaseName, number[]> = { sdkSeal: [], rawSignEncrypt: [], sdkOpen: [], rawDecryptVerify: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const name of Object.keys(cases) as CaseName[]) samples[name].push(await round(cases[name]));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ops = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v))])) as Record<CaseName, number>;
const result = {
  benchmark: 'protocol-seal-open',
  node: process.version,
  plaintextBytes: plainSize,
  sealedBytes: sealed.jwe.length,
  rounds: ROUNDS,
  iterationsPerRound: PER_ROUND,
  concurrency: CONCURRENCY,
  opsPerSecond: ops,
  // Median of per-round ratios: robust to the machine's speed drifting between rounds.
  ratio: {
    seal: +median(samples.sdkSeal.map((v, i) => v / samples.rawSignEncrypt[i]!)).toFixed(3),
    open: +median(samples.sdkOpen.map((v, i) => v / samples.rawDecryptVerify[i]!)).toFixed(3),
  },
  target: 0.8,
  at: new Date().toISOString(),
};
console.log(`referral: ${plainSize} bytes of message JSON, ${sealed.jwe.length} bytes sealed`);
console.log(`seal  ${ops.sdkSeal} ops/s   raw jose sign+encrypt  ${ops.rawSignEncrypt} ops/s   ratio ${result.ratio.seal}`);
console.log(`open  ${ops.sdkOpen} ops/s   raw jose decrypt+verify ${ops.rawDecryptVerify} ops/s   ratio ${result.ratio.open}`);
console.log(`target ratio ≥ ${result.target}`);
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/protocol-seal-open.json', `${JSON.stringify(result, null, 2)}\n`);
