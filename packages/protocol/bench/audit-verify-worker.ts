/**
 * Worker for bench/audit-verify.ts. Three jobs:
 *  - `generate`: sign a slice of the benchmark's messages (message signing is mostly JavaScript, so
 *    it is spread over threads like verification);
 *  - `load`, then `consents` and `records`: parse the bundle file once, verify a slice of its
 *    consents (verifyBundleConsents), then a slice of its records against the context the main
 *    thread prepared (verifyBundleRecords);
 *  - `raw`: the baseline, `crypto.subtle.verify('Ed25519')` over the bundle's own signatures, with
 *    the signing inputs, signatures and keys decoded beforehand.
 */
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import {
  buildReferral,
  buildReintegrationProfile,
  buildReintegrationUpdate,
  fromB64u,
  importSigningKey,
  sha256b64uSync,
  signMessage,
  utf8,
  type Message,
  type PrivateJwk,
} from '@passerelle/protocol';
import { verifyBundleConsents, verifyBundleRecords, type PreparedBundle } from '../src/audit/verify-bundle.js';

export const BENCH_START = Date.parse('2026-01-05T08:00:00Z');
export const MESSAGE_SPACING_MS = 60_000;
export const ACCUEIL = 'https://accueil.example.be';
export const CORRIDOR = 'https://corridor.example.fr';
export const REINTEGRATION = 'https://reintegration.example.sn';

/** Who exchanges message `i` with the exporter, and in which direction. */
export function routeOf(i: number): { direction: 'sent' | 'received'; peer: string; kind: 'referral' | 'profile' | 'update' } {
  const r = i % 10;
  if (r === 9) return { direction: 'received', peer: REINTEGRATION, kind: 'update' };
  if (r >= 7) return { direction: 'sent', peer: CORRIDOR, kind: 'referral' };
  return { direction: 'sent', peer: REINTEGRATION, kind: r % 2 === 0 ? 'referral' : 'profile' };
}

export interface GenerateJob {
  type: 'generate';
  start: number;
  end: number;
  accueilKey: PrivateJwk;
  reintegrationKey: PrivateJwk;
  agreementId: string;
  consents: { id: string; jws: string; subject: string }[];
}

export interface GeneratedMessage {
  i: number;
  id: string;
  jwt: string;
  digest: string;
  created: number;
}

function message(i: number, job: GenerateJob): Message {
  const consent = job.consents[i % job.consents.length]!;
  const route = routeOf(i);
  const created = new Date(BENCH_START + i * MESSAGE_SPACING_MS);
  const common = { agreementId: job.agreementId, consentId: consent.id, consentRecord: consent.jws, created };
  if (route.kind === 'update') {
    return buildReintegrationUpdate({
      ...common,
      from: REINTEGRATION,
      to: ACCUEIL,
      body: { subject: consent.subject, period: { from: new Date(created.getTime() - 86_400_000).toISOString().replace('.000Z', 'Z'), to: created.toISOString().replace('.000Z', 'Z') }, visit: 'phone' },
      data: { monitoring: { status: 'on-track', notes: 'Workshop reopened; first orders delivered.' } },
    });
  }
  if (route.kind === 'profile') {
    return buildReintegrationProfile({
      ...common,
      from: ACCUEIL,
      to: route.peer,
      body: { subject: consent.subject, dimensions: ['economic', 'social'], assistancePackage: 'standard' },
      data: { 'return-travel': { destinationCountry: 'SN', destinationLocality: 'Thiès' } },
    });
  }
  return buildReferral({
    ...common,
    from: ACCUEIL,
    to: route.peer,
    body: { subject: consent.subject, services: ['reintegration-support'], urgency: 'routine', reasonCode: 'pre-departure' },
    data:
      route.peer === REINTEGRATION
        ? { identity: { givenName: 'Awa', familyName: 'Exemple' }, health: { followUpRequired: true } }
        : { identity: { givenName: 'Awa' }, contact: { phone: '+32 470 00 00 00' } },
  });
}

async function generate(job: GenerateJob): Promise<GeneratedMessage[]> {
  const accueil = await importSigningKey(job.accueilKey);
  const reintegration = await importSigningKey(job.reintegrationKey);
  const out: GeneratedMessage[] = [];
  const BATCH = 64;
  for (let i = job.start; i < job.end; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(i + BATCH, job.end); j++) {
      const m = message(j, job);
      const key = routeOf(j).direction === 'received' ? reintegration : accueil;
      batch.push(
        signMessage(m, key).then(({ jwt }) => ({
          i: j,
          id: m.header.id,
          jwt,
          // The JWE itself is not part of an audit bundle, only its digest: a stand-in of the
          // usual size keeps generation fast without changing what the verifier does.
          digest: sha256b64uSync(`${jwt}|jwe|${j}`),
          created: BENCH_START + j * MESSAGE_SPACING_MS,
        })),
      );
    }
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Verification

let bundle: Record<string, unknown> | undefined;
let raw: { input: Uint8Array<ArrayBuffer>; signature: Uint8Array<ArrayBuffer>; key: CryptoKey }[] = [];

async function load(path: string): Promise<{ parseMs: number; signatures: number }> {
  const t0 = performance.now();
  bundle = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const parseMs = performance.now() - t0;
  // Baseline material: every message and receipt signature, decoded, with its imported key.
  const keys = new Map<string, Promise<CryptoKey>>();
  for (const node of bundle.nodes as { documents: { payload: string }[] }[]) {
    for (const doc of node.documents) {
      const payload = JSON.parse(new TextDecoder().decode(fromB64u(doc.payload))) as { keys: { kid: string; use: string; jwk: { x: string } }[] };
      for (const k of payload.keys) {
        if (k.use === 'sig' && !keys.has(k.kid)) {
          keys.set(k.kid, crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x: k.jwk.x }, 'Ed25519', false, ['verify']));
        }
      }
    }
  }
  raw = [];
  const records = [...(bundle.messages as { jwt: string; receipt?: string }[]), ...(bundle.erasures as { jwt: string; receipt?: string }[])];
  for (const r of records) {
    for (const token of r.receipt ? [r.jwt, r.receipt] : [r.jwt]) {
      const [h, p, s] = token.split('.') as [string, string, string];
      const kid = (JSON.parse(new TextDecoder().decode(fromB64u(h))) as { kid: string }).kid;
      raw.push({ input: utf8(`${h}.${p}`) as Uint8Array<ArrayBuffer>, signature: fromB64u(s) as Uint8Array<ArrayBuffer>, key: await keys.get(kid)! });
    }
  }
  return { parseMs, signatures: raw.length };
}

/** Verifies `count` signatures starting at `offset` (cycling through the material), `window` in flight. */
async function rawVerify(offset: number, count: number, window: number): Promise<{ verified: number; failed: number }> {
  let next = 0;
  let verified = 0;
  let failed = 0;
  const lane = async () => {
    for (let k = next++; k < count; k = next++) {
      const item = raw[(offset + k) % raw.length]!;
      if (await crypto.subtle.verify('Ed25519', item.key, item.signature, item.input)) verified++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return { verified, failed };
}

parentPort?.on('message', async (job: { type: string; id: number } & Record<string, unknown>) => {
  try {
    let result: unknown;
    if (job.type === 'generate') result = await generate(job as unknown as GenerateJob);
    else if (job.type === 'load') result = await load(job.path as string);
    else if (job.type === 'raw') result = await rawVerify(job.offset as number, job.count as number, job.window as number);
    else if (job.type === 'consents') {
      result = await verifyBundleConsents(bundle, { start: job.start as number, end: job.end as number }, { concurrency: job.window as number });
    } else if (job.type === 'records') {
      result = await verifyBundleRecords(bundle, job.prepared as PreparedBundle, { start: job.start as number, end: job.end as number }, { concurrency: job.window as number });
    } else throw new Error(`Unknown job ${job.type}`);
    parentPort!.postMessage({ id: job.id, result });
  } catch (e) {
    parentPort!.postMessage({ id: job.id, error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e) });
  }
});
