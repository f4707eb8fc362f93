/**
 * Three Passerelle nodes on loopback, one case from consent to erasure.
 *
 *   BE  a host-country reception agency in Belgium
 *   FR  a partner agency in France working the same transit corridor
 *   SN  a reintegration partner in the origin country, Senegal
 *
 * Administrators pin each other's fingerprints and co-sign two agreements (BE↔SN, BE↔FR); a BE
 * caseworker records a consent taken orally in French with an intercultural mediator; BE refers the
 * case to SN, sends a reintegration profile, receives SN's monitoring report, shares the case with
 * FR across the border; the person withdraws consent, queued messages are cancelled, every
 * recipient is told first and answers with a signed erasure confirmation; BE exports an audit
 * bundle that is verified offline. Caseworker and administrator actions go through each node's
 * local HTTP API with bearer tokens, as an agency's own software would.
 *
 * All organisations, people and case references are fictional.
 *
 *   pnpm demo [--out DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as nodeApi from '@passerelle/node';
import { initNodeDir, startNode, type NodeConfigInput, type OutboxSummary, type RunningNode } from '@passerelle/node';
import * as protocol from '@passerelle/protocol';
import {
  MessageTypes,
  peekCompactPayload,
  ProtocolError,
  sha256b64u,
  toTimestamp,
  type AgreementInput,
  type DataCategory,
  type GeneralJws,
  type NodeRole,
} from '@passerelle/protocol';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DAY = 24 * 3600_000;

/** A path as the reader can use it from where the demo was started. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
}

// ---------------------------------------------------------------------------------------------
// Output

export interface DemoOptions {
  /** Where node directories and the audit bundle go; `.demo/<timestamp>` under the repository by default. */
  out?: string;
  /** Where the timeline is printed (stdout by default). */
  write?: (text: string) => void;
}

export interface DemoResult {
  outDir: string;
  nodes: { be: string; fr: string; sn: string };
  consentId: string;
  /** When BE recorded the withdrawal, and when each recipient did (from their own stores). */
  withdrawnAt: { be?: string; fr?: string; sn?: string };
  /** Every message the three nodes sent, with its final delivery state. */
  messages: { id: string; type: string; from: string; to: string; state: string }[];
  withdrawal: { cancelled: string[]; notified: string[]; withdrawalMessages: string[] };
  /** Erasure confirmations BE received, by sender, with the messages each erased. */
  erasureConfirmations: { from: string; erased: number }[];
  /** Inbound messages under the consent still holding personal data at each recipient (0 after erasure). */
  remainingPersonalData: { fr: number; sn: number };
  bundle?: { file: string; ok: boolean; failures: number };
  /** Why no bundle was written, when none was. */
  elapsedMs: number;
}

const PREFIX_WIDTH = 16;
const WHAT_WIDTH = 66;

class Timeline {
  #n = 0;
  constructor(readonly write: (text: string) => void) {}

  line(text = ''): void {
    this.write(`${text}\n`);
  }

  /** `NN  actor  what  [status digest receiver-log]`, in fixed columns. */
  step(actor: string, what: string, receipt?: ReceiptInfo): void {
    this.#n += 1;
    const head = `${String(this.#n).padStart(3)}  ${actor.padEnd(10)} ${what}`;
    if (!receipt) {
      this.line(head);
      return;
    }
    const tail = `${receipt.status.padEnd(8)}  ${receipt.digest.slice(0, 10)}…  ${receipt.receiver} #${receipt.logIndex ?? '-'}`;
    this.line(`${head.padEnd(PREFIX_WIDTH + WHAT_WIDTH)}  ${tail}`);
  }

  header(): void {
    this.line(`${'  #'}  ${'who'.padEnd(10)} ${'what'.padEnd(WHAT_WIDTH)}  ${'receipt'.padEnd(8)}  ${'digest'.padEnd(11)}  receiver log`);
  }

  detail(text: string): void {
    this.line(`${' '.repeat(16)}${text}`);
  }
}

interface ReceiptInfo {
  status: string;
  digest: string;
  receiver: string;
  logIndex: number | undefined;
}

// ---------------------------------------------------------------------------------------------
// Nodes

interface Org {
  code: 'BE' | 'FR' | 'SN';
  name: string;
  country: string;
  roles: NodeRole[];
  languages: string[];
}

const ORGS: Org[] = [
  { code: 'BE', name: "Centre d'accueil Exemple (BE)", country: 'BE', roles: ['reception-agency', 'return-counselling'], languages: ['fr', 'nl', 'en'] },
  { code: 'FR', name: 'Corridor Solidaire Exemple (FR)', country: 'FR', roles: ['ngo', 'outreach-team'], languages: ['fr', 'en'] },
  { code: 'SN', name: 'Réintégration Exemple Thiès (SN)', country: 'SN', roles: ['reintegration-partner'], languages: ['fr', 'wo'] },
];

/** Fast timers so the whole scenario takes seconds; the production defaults are in config.ts. */
const DEMO_CONFIG: Partial<NodeConfigInput> = {
  logLevel: 'silent',
  outbox: { pollIntervalMs: 50, backoffBaseMs: 50, backoffCapMs: 400, leaseMs: 10_000, breakerThreshold: 3, breakerCooldownMs: 300, maxAttempts: 500 },
  limits: { outboundTimeoutMs: 3000, outboundConnectTimeoutMs: 1000, documentRefreshIntervalMs: 500 },
};

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

interface DemoNode {
  org: Org;
  dir: string;
  node: RunningNode;
  admin: string;
  caseworker: string;
}

/** Calls a node's local API; a problem+json answer becomes a ProtocolError with its code. */
async function api<T = Record<string, unknown>>(n: DemoNode, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const url = `${n.node.url}${nodeApi.API_PREFIX}${path}`;
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  if (!response.ok) {
    const code = typeof json.code === 'string' && protocol.isErrorCode(json.code) ? json.code : 'INTERNAL';
    const issues = Array.isArray(json.issues) ? ` (${(json.issues as { path?: string; message?: string }[]).map((i) => `${i.path}: ${i.message}`).join('; ')})` : '';
    throw new ProtocolError(code, `${method} ${path} on ${n.org.code}: ${String(json.detail ?? json.title ?? response.status)}${issues}`);
  }
  return json as T;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new ProtocolError('INTERNAL', `Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function receiptInfo(entry: OutboxSummary, receiver: string): ReceiptInfo {
  if (!entry.receipt) return { status: entry.state, digest: entry.digest, receiver, logIndex: undefined };
  const r = peekCompactPayload(entry.receipt) as { status: string; digest: string; log?: { index: number } };
  return { status: r.status, digest: r.digest, receiver, logIndex: r.log?.index };
}

/** Waits until a message the node sent has ended; it must end delivered. */
async function delivered(from: DemoNode, messageId: string, receiver: string): Promise<ReceiptInfo> {
  const entry = await waitFor(`delivery of ${messageId}`, async () => {
    const e = await api<OutboxSummary>(from, from.caseworker, 'GET', `/outbox/${messageId}`);
    return e.state === 'queued' ? undefined : e;
  });
  if (entry.state !== 'delivered') {
    const problem = entry.problem as { code?: string; detail?: string } | undefined;
    throw new ProtocolError('INTERNAL', `${entry.type} ${messageId} ended ${entry.state}: ${problem?.code ?? entry.lastError ?? 'no detail'}`);
  }
  return receiptInfo(entry, receiver);
}

// ---------------------------------------------------------------------------------------------
// The scenario's fixed content (fictional)

const SUBJECT = 'case-be-2026-0117';
const CONSENT_TEXT_FR = [
  "Je comprends que le Centre d'accueil Exemple partagera les informations nécessaires à mon orientation",
  'avec les organisations nommées ci-dessous, pour les finalités indiquées, et que je peux retirer ce',
  'consentement à tout moment, sans conséquence sur l’aide que je reçois.',
].join(' ');
const ALL_BE_SN: DataCategory[] = ['identity', 'contact', 'documents', 'family', 'education-skills', 'employment', 'health', 'vulnerability', 'return-travel', 'reintegration-plan'];

function retention(categories: readonly DataCategory[], days = 730) {
  return categories.map((category) => ({ category, days: category === 'health' ? 365 : days }));
}

function agreementBeSn(be: string, sn: string): AgreementInput {
  return {
    title: 'Accord de coopération — retour volontaire et réintégration (Belgique–Sénégal)',
    parties: [
      { node: be, role: 'reception-agency', name: ORGS[0]!.name },
      { node: sn, role: 'reintegration-partner', name: ORGS[2]!.name },
    ],
    purposes: ['referral', 'reintegration-planning', 'reintegration-assistance', 'monitoring', 'case-coordination'],
    flows: [
      { from: be, to: sn, messageTypes: ['referral', 'reintegration-profile', 'case-closure', 'consent-withdrawal', 'problem-report'], categories: ALL_BE_SN },
      { from: sn, to: be, messageTypes: ['referral-response', 'reintegration-update', 'erasure-confirmation', 'problem-report'], categories: ['contact', 'monitoring'] },
    ],
    onwardReferral: { allowed: false },
    retention: retention([...ALL_BE_SN, 'monitoring']),
    legalBasis: { basis: 'consent', reference: 'Regulation (EU) 2016/679, art. 6(1)(a) and 9(2)(a); Loi n° 2008-12 (Sénégal)' },
    validFrom: toTimestamp(Date.now() - DAY),
    validUntil: toTimestamp(Date.now() + 2 * 365 * DAY),
  };
}

function agreementBeFr(be: string, fr: string): AgreementInput {
  const categories: DataCategory[] = ['identity', 'contact', 'legal-status', 'return-travel', 'health'];
  return {
    title: 'Coopération transfrontalière — corridor de transit (Belgique–France)',
    parties: [
      { node: be, role: 'reception-agency', name: ORGS[0]!.name },
      { node: fr, role: 'ngo', name: ORGS[1]!.name },
    ],
    purposes: ['referral', 'case-coordination', 'return-counselling'],
    flows: [
      { from: be, to: fr, messageTypes: ['referral', 'case-closure', 'consent-withdrawal', 'problem-report'], categories },
      { from: fr, to: be, messageTypes: ['referral-response', 'erasure-confirmation', 'problem-report'], categories: ['contact'] },
    ],
    onwardReferral: { allowed: false },
    retention: retention(categories, 365),
    legalBasis: { basis: 'consent', reference: 'Regulation (EU) 2016/679, art. 6(1)(a) and 9(2)(a)' },
    validFrom: toTimestamp(Date.now() - DAY),
    validUntil: toTimestamp(Date.now() + 365 * DAY),
  };
}

// ---------------------------------------------------------------------------------------------
// The scenario

async function startDemoNode(org: Org, dir: string): Promise<RunningNode> {
  const node = await startNode({ dir });
  if (!node.url) throw new ProtocolError('INTERNAL', `${org.code} did not start listening`);
  return node;
}

async function prepare(org: Org, outDir: string): Promise<{ dir: string; node: RunningNode }> {
  const dir = join(outDir, org.code.toLowerCase());
  const port = await freePort();
  // A loopback http id in dev mode; a real node's id is its https origin behind a TLS proxy.
  await initNodeDir({ dir, url: `http://127.0.0.1:${port}`, name: org.name, country: org.country, roles: org.roles, languages: org.languages, devMode: true, config: DEMO_CONFIG });
  return { dir, node: await startDemoNode(org, dir) };
}

async function coSign(t: Timeline, a: DemoNode, b: DemoNode, payload: AgreementInput): Promise<string> {
  const first = await api<{ jws: GeneralJws }>(a, a.admin, 'POST', '/agreements/sign', { agreement: payload });
  const both = await api<{ jws: GeneralJws }>(b, b.admin, 'POST', '/agreements/sign', { agreement: first.jws });
  const ra = await api<{ id: string; inForce: boolean; signedBy: string[] }>(a, a.admin, 'POST', '/agreements', { jws: both.jws });
  const rb = await api<{ id: string; inForce: boolean }>(b, b.admin, 'POST', '/agreements', { jws: both.jws });
  if (!ra.inForce || !rb.inForce) throw new ProtocolError('AGREEMENT_NOT_IN_FORCE', `The ${a.org.code}↔${b.org.code} agreement is not in force after co-signing`);
  t.step(`${a.org.code}+${b.org.code} adm`, `co-sign agreement ${a.org.code}↔${b.org.code} (${ra.signedBy.length} signatures), registered on both: in force`);
  t.detail(`"${payload.title}"`);
  t.detail(`id ${ra.id}; flows ${payload.flows.map((f) => `${codeOf(f.from)}→${codeOf(f.to)} ${f.messageTypes.length} types/${f.categories.length} categories`).join(', ')}`);
  return ra.id;
}

const codes = new Map<string, string>();
function codeOf(id: string): string {
  return codes.get(id) ?? id;
}

async function send(from: DemoNode, input: Record<string, unknown>): Promise<OutboxSummary> {
  return api<OutboxSummary>(from, from.caseworker, 'POST', '/messages', input);
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const started = Date.now();
  const t = new Timeline(options.write ?? ((s) => process.stdout.write(s)));
  const outDir = resolve(options.out ?? join(REPO_ROOT, '.demo', new Date().toISOString().replace(/[:.]/g, '-')));
  await mkdir(outDir, { recursive: true });
  const running: RunningNode[] = [];
  const nodes: DemoNode[] = [];
  try {
    // Setup: three node directories, three nodes, one administrator and one caseworker token each.
    for (const org of ORGS) {
      const { dir, node } = await prepare(org, outDir);
      running.push(node);
      // The first administrator token is created out of band (`passerelle tokens create`).
      const admin = (await node.createToken('administrator', `${org.code} administrator`)).secret;
      const dn: DemoNode = { org, dir, node, admin, caseworker: '' };
      dn.caseworker = (await api<{ secret: string }>(dn, admin, 'POST', '/tokens', { role: 'caseworker', label: `${org.code} caseworker` })).secret;
      codes.set(node.id, org.code);
      nodes.push(dn);
    }
    const [be, fr, sn] = nodes as [DemoNode, DemoNode, DemoNode];
    t.line(`Passerelle three-node demo (output in ${shown(outDir)})`);
    t.line();
    for (const n of nodes) t.line(`  ${n.org.code}  ${n.org.name.padEnd(34)} ${n.node.id.padEnd(24)} fingerprint ${n.node.fingerprints()[0]!.slice(0, 16)}…`);
    t.line();
    t.header();

    // 1. Trust: fingerprints exchanged out of band, pinned through each administrator's local API.
    const fingerprint = async (n: DemoNode) => (await api<{ fingerprints: string[] }>(n, n.admin, 'GET', '/node')).fingerprints;
    const pin = async (a: DemoNode, b: DemoNode) => {
      const view = await api<{ document?: { version: number } }>(a, a.admin, 'POST', '/peers', { nodeId: b.node.id, fingerprints: await fingerprint(b) });
      if (!view.document) throw new ProtocolError('NODE_DOCUMENT_INVALID', `${a.org.code} could not fetch ${b.org.code}'s node document`);
    };
    await pin(be, sn);
    await pin(be, fr);
    t.step('BE admin', 'pin SN and FR by node id + fingerprint; their node documents verify');
    await pin(sn, be);
    t.step('SN admin', 'pin BE by node id + fingerprint');
    await pin(fr, be);
    t.step('FR admin', 'pin BE by node id + fingerprint');

    // 2. Agreements, co-signed by both parties.
    const agreementSn = await coSign(t, be, sn, agreementBeSn(be.node.id, sn.node.id));
    const agreementFr = await coSign(t, be, fr, agreementBeFr(be.node.id, fr.node.id));

    // 3. Consent, taken orally in French with an intercultural mediator.
    const consent = await api<{ id: string; jws: string }>(be, be.caseworker, 'POST', '/consents', {
      subject: SUBJECT,
      purposes: ['referral', 'reintegration-planning', 'reintegration-assistance', 'monitoring', 'case-coordination'],
      recipients: [sn.node.id, fr.node.id],
      categories: ['identity', 'contact', 'education-skills', 'employment', 'health', 'legal-status', 'return-travel', 'reintegration-plan', 'monitoring'],
      explicitConsent: ['health'],
      collection: {
        method: 'oral',
        interpreter: { kind: 'intercultural-mediator', language: 'wo' },
        language: 'fr',
        text: { version: 'BE-consentement-2026-03', digest: await sha256b64u(CONSENT_TEXT_FR) },
      },
      collectedAt: toTimestamp(Date.now()),
      expiresAt: toTimestamp(Date.now() + 365 * DAY),
      collectedBy: { role: 'caseworker', staffRef: 'cw-be-017' },
    });
    t.step('BE case', `record consent ${consent.id.slice(0, 8)}… for ${SUBJECT} (pseudonymous), signed by BE`);
    t.detail('oral, consent text in French (version BE-consentement-2026-03, digest of the text kept),');
    t.detail('explained by an intercultural mediator (Wolof); recipients SN and FR; explicit consent for health');

    // 4. Referral BE → SN.
    const referral = await send(be, {
      type: MessageTypes.REFERRAL,
      to: sn.node.id,
      agreementId: agreementSn,
      consentId: consent.id,
      purpose: 'reintegration-planning',
      body: { subject: SUBJECT, services: ['reintegration-support', 'medical'], urgency: 'routine', reasonCode: 'pre-departure' },
      data: {
        identity: { givenName: 'Awa', familyName: 'Exemple', dateOfBirth: '1994-03-12', nationalities: ['SN'], preferredLanguages: ['wo', 'fr'] },
        contact: { phone: '+32 470 00 00 00', preferredChannel: 'through-caseworker' },
        health: { needs: ['Follow-up for a chronic condition'], followUpRequired: true, fitToTravel: true },
        'return-travel': { plannedDeparture: '2027-01-20', departureCountry: 'BE', destinationCountry: 'SN', destinationLocality: 'Thiès', arrivalAssistance: true },
      },
    });
    const thread = referral.threadId;
    t.step('BE → SN', 'referral: identity, contact, health, return-travel', await delivered(be, referral.id, 'SN'));

    // 5. SN reads it (an audited read of personal data) and accepts.
    const inboxSn = await api<{ messages: { id: string }[] }>(sn, sn.caseworker, 'GET', `/inbox?threadId=${thread}`);
    const read = await api<{ data?: Record<string, Record<string, unknown>> }>(sn, sn.caseworker, 'GET', `/inbox/${inboxSn.messages[0]!.id}`);
    t.step('SN case', `reads the referral: ${Object.keys(read.data ?? {}).length} categories disclosed (the read is audited)`);
    const response = await send(sn, {
      type: MessageTypes.REFERRAL_RESPONSE,
      to: be.node.id,
      agreementId: agreementSn,
      consentId: consent.id,
      threadId: thread,
      body: { inReplyTo: referral.id, subject: SUBJECT, decision: 'accepted', receiverCaseRef: 'sn-thies-2026-031' },
    });
    t.step('SN → BE', 'referral-response: accepted (SN case sn-thies-2026-031)', await delivered(sn, response.id, 'BE'));

    // 6. Reintegration profile BE → SN.
    const profile = await send(be, {
      type: MessageTypes.REINTEGRATION_PROFILE,
      to: sn.node.id,
      agreementId: agreementSn,
      consentId: consent.id,
      threadId: thread,
      purpose: 'reintegration-planning',
      body: { subject: SUBJECT, dimensions: ['economic', 'social', 'psychosocial'], assistancePackage: 'enhanced' },
      data: {
        'education-skills': { skills: [{ name: 'tailoring', level: 'advanced' }], languages: [{ tag: 'wo', level: 'native' }, { tag: 'fr', level: 'fluent' }] },
        employment: { workHistory: [{ occupation: 'Tailor', country: 'SN', from: '2012', to: '2019' }], currentSituation: 'not-allowed-to-work' },
        'reintegration-plan': {
          intendedActivities: [{ dimension: 'economic', kind: 'business', description: 'Small tailoring workshop in Thiès' }],
          housing: { arrangement: 'family', supportNeeded: false },
          budgetEur: 2000,
          goals: ['Sustainable income within 12 months'],
        },
        health: { psychosocialNeeds: ['Peer support group after arrival'] },
      },
    });
    t.step('BE → SN', 'reintegration-profile: skills, work, plan, psychosocial needs', await delivered(be, profile.id, 'SN'));

    // 7. Monitoring after arrival, reported back by SN.
    const update = await send(sn, {
      type: MessageTypes.REINTEGRATION_UPDATE,
      to: be.node.id,
      agreementId: agreementSn,
      consentId: consent.id,
      threadId: thread,
      purpose: 'monitoring',
      body: { subject: SUBJECT, period: { from: toTimestamp(Date.now() - 30 * DAY), to: toTimestamp(Date.now()) }, visit: 'in-person' },
      data: {
        monitoring: {
          assistanceDelivered: [{ kind: 'Start-up grant: sewing machines', deliveredOn: '2027-02-15', amountEur: 1200 }],
          progress: { economic: 2, social: 3, psychosocial: 2 },
          status: 'on-track',
          observedAt: toTimestamp(Date.now()),
        },
      },
    });
    t.step('SN → BE', 'reintegration-update: monitoring, on track, grant delivered', await delivered(sn, update.id, 'BE'));

    // 8. Cross-border: BE shares the case with FR under the BE↔FR agreement.
    const crossBorder = await send(be, {
      type: MessageTypes.REFERRAL,
      to: fr.node.id,
      agreementId: agreementFr,
      consentId: consent.id,
      purpose: 'case-coordination',
      body: { subject: SUBJECT, services: ['legal', 'social'], urgency: 'routine', reasonCode: 'cross-border-coordination' },
      data: {
        identity: { givenName: 'Awa', familyName: 'Exemple', nationalities: ['SN'] },
        contact: { preferredChannel: 'through-caseworker' },
        'legal-status': { status: 'rejected-asylum-seeker', returnDecision: false },
      },
    });
    t.step('BE → FR', 'cross-border referral: identity, contact, legal-status', await delivered(be, crossBorder.id, 'FR'));
    const frResponse = await send(fr, {
      type: MessageTypes.REFERRAL_RESPONSE,
      to: be.node.id,
      agreementId: agreementFr,
      consentId: consent.id,
      threadId: crossBorder.threadId,
      body: { inReplyTo: crossBorder.id, subject: SUBJECT, decision: 'accepted', receiverCaseRef: 'fr-corridor-2026-118' },
    });
    t.step('FR → BE', 'referral-response: accepted (FR case fr-corridor-2026-118)', await delivered(fr, frResponse.id, 'BE'));

    // 9. FR's connection drops; a follow-up waits in BE's durable outbox.
    await fr.node.close();
    running.splice(running.indexOf(fr.node), 1);
    t.step('FR', 'goes offline (connection lost)');
    const followUp = await send(be, {
      type: MessageTypes.REFERRAL,
      to: fr.node.id,
      agreementId: agreementFr,
      consentId: consent.id,
      threadId: crossBorder.threadId,
      purpose: 'case-coordination',
      body: { subject: SUBJECT, services: ['reception'], urgency: 'urgent', reasonCode: 'continuity-of-care' },
      data: { 'return-travel': { departureCountry: 'FR', destinationCountry: 'SN', escortNeeded: false } },
    });
    const waiting = await waitFor('a failed delivery attempt to FR', async () => {
      const e = await api<OutboxSummary>(be, be.caseworker, 'GET', `/outbox/${followUp.id}`);
      return e.state === 'queued' && e.attempts > 0 ? e : undefined;
    });
    t.step('BE → FR', `follow-up referral: stays queued, retried with backoff (${(waiting.lastError ?? 'unreachable').split(':')[0]})`);

    // 10. The person withdraws consent.
    const withdrawal = await api<{ cancelled: string[]; notified: string[]; withdrawalMessages: string[] }>(be, be.caseworker, 'POST', `/consents/${consent.id}/withdraw`, { erasureRequested: true });
    t.step('BE case', `the person withdraws consent; erasure requested`);
    t.detail(`${withdrawal.cancelled.length} queued message${withdrawal.cancelled.length === 1 ? '' : 's'} cancelled; withdrawal queued ahead of everything else to ${withdrawal.notified.map(codeOf).join(' and ')}`);
    const cancelledEntry = await api<OutboxSummary>(be, be.caseworker, 'GET', `/outbox/${followUp.id}`);
    if (cancelledEntry.state !== 'cancelled') throw new ProtocolError('INTERNAL', `The follow-up is ${cancelledEntry.state}, not cancelled`);
    t.detail(`follow-up ${followUp.id.slice(0, 8)}… is now ${cancelledEntry.state}: it will never be sent`);

    // 11. Withdrawals delivered (SN now, FR once it is back), erasure confirmations come back.
    const withdrawalTo = new Map<string, string>();
    for (const id of withdrawal.withdrawalMessages) withdrawalTo.set((await api<OutboxSummary>(be, be.caseworker, 'GET', `/outbox/${id}`)).peer, id);
    const toSn = withdrawalTo.get(sn.node.id);
    const toFr = withdrawalTo.get(fr.node.id);
    if (!toSn || !toFr) throw new ProtocolError('INTERNAL', 'A recipient of the data was not sent a withdrawal');
    t.step('BE → SN', 'consent-withdrawal', await delivered(be, toSn, 'SN'));
    fr.node = await startDemoNode(fr.org, fr.dir);
    running.push(fr.node);
    t.step('FR', 'back online');
    be.node.flush();
    t.step('BE → FR', 'consent-withdrawal, first thing FR receives', await delivered(be, toFr, 'FR'));
    const frInbox = await fr.node.listInbox({ consentId: consent.id });
    if (frInbox.some((m) => m.id === followUp.id)) throw new ProtocolError('INTERNAL', 'FR received the cancelled follow-up');

    const confirmations: DemoResult['erasureConfirmations'] = [];
    for (const peer of [sn, fr]) {
      const sent = await waitFor(`${peer.org.code}'s erasure confirmation`, async () => {
        const list = await peer.node.listOutbox({ peer: be.node.id });
        const e = list.find((m) => m.type === MessageTypes.ERASURE_CONFIRMATION);
        return e && e.state !== 'queued' ? e : undefined;
      });
      if (sent.state !== 'delivered') throw new ProtocolError('INTERNAL', `${peer.org.code}'s erasure confirmation ended ${sent.state}`);
      const received = await api<{ body: { erased: { messageId: string; categories: string[] }[]; retained: unknown[] } }>(be, be.caseworker, 'GET', `/inbox/${sent.id}`);
      const categories = [...new Set(received.body.erased.flatMap((e) => e.categories))];
      confirmations.push({ from: peer.node.id, erased: received.body.erased.length });
      const n = received.body.erased.length;
      t.step(`${peer.org.code} → BE`, `erasure-confirmation: ${n} message${n === 1 ? '' : 's'} erased, ${received.body.retained.length} retained`, receiptInfo(sent, 'BE'));
      t.detail(`signed by ${peer.org.code}; erased categories: ${categories.join(', ')}`);
    }
    const held = async (n: DemoNode) => (await n.node.listInbox({ consentId: consent.id })).filter((m) => !m.erased && m.categories.length > 0).length;
    const remainingPersonalData = { fr: await held(fr), sn: await held(sn) };
    t.step('check', `personal data left under the consent: SN ${remainingPersonalData.sn}, FR ${remainingPersonalData.fr} messages`);
    t.detail('signed parts, digests and receipts are kept as evidence; the disclosures are gone');

    const withdrawnAt = async (n: DemoNode) => (await n.node.readConsent(consent.id, 'demo')).withdrawnAt;
    const withdrawnAtAll = { be: await withdrawnAt(be), fr: await withdrawnAt(fr), sn: await withdrawnAt(sn) };

    // 12. Audit bundle, verified offline.
    const file = join(outDir, 'audit-bundle-be.json');
    const exported = await be.node.exportAuditBundle({ scope: { kind: 'all' }, personalData: 'none' });
    await writeFile(file, `${JSON.stringify(exported)}\n`, { mode: 0o600 });
    t.step('BE audit', `export audit bundle (no personal data): ${shown(file)}`);
    // The auditor works from the file's bytes alone, not from the exporter's objects.
    const report = await protocol.verifyBundle(JSON.parse(JSON.stringify(exported)) as unknown);
    const bundle: DemoResult['bundle'] = { file, ok: report.ok, failures: report.failures.length };
    t.step('auditor', `verify it offline: ${report.ok ? 'everything verifies' : `${report.failures.length} failures`}`);
    for (const l of protocol.formatReport(report).trimEnd().split('\n')) t.detail(l);
    if (!report.ok) throw new ProtocolError('AUDIT_PROOF_INVALID', 'The audit bundle did not verify');

    // Final states, from each sender's outbox.
    const messages: DemoResult['messages'] = [];
    for (const n of nodes) for (const m of await n.node.listOutbox()) messages.push({ id: m.id, type: m.type, from: n.node.id, to: m.peer, state: m.state });
    const elapsedMs = Date.now() - started;
    t.line();
    const byState = messages.reduce<Record<string, number>>((acc, m) => ((acc[m.state] = (acc[m.state] ?? 0) + 1), acc), {});
    t.line(`Done in ${(elapsedMs / 1000).toFixed(1)} s: ${messages.length} messages (${Object.entries(byState).map(([k, v]) => `${v} ${k}`).join(', ')}), consent withdrawn, ${confirmations.length} erasure confirmations.`);
    t.line(`Node directories${bundle ? ' and the audit bundle' : ''} are in ${shown(outDir)}; try: pnpm passerelle node info --dir ${shown(be.dir)}`);
    return {
      outDir,
      nodes: { be: be.node.id, fr: fr.node.id, sn: sn.node.id },
      consentId: consent.id,
      withdrawnAt: withdrawnAtAll,
      messages,
      withdrawal,
      erasureConfirmations: confirmations,
      remainingPersonalData,
      ...(bundle ? { bundle } : {}),
      elapsedMs,
    };
  } finally {
    await Promise.allSettled(running.map((n) => n.close()));
  }
}

// Run as a script: `pnpm demo [--out DIR]`.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let out: string | undefined;
  try {
    const { values } = parseArgs({ options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      process.stdout.write('Usage: pnpm demo [--out DIR]\n\nRuns three nodes on loopback through one case, from consent to erasure.\n');
      process.exit(0);
    }
    out = values.out;
  } catch (e) {
    process.stderr.write(`error MALFORMED: ${(e as Error).message}\n`);
    process.exit(2);
  }
  try {
    await runDemo(out ? { out } : {});
  } catch (e) {
    const code = e instanceof ProtocolError ? e.code : 'INTERNAL';
    process.stderr.write(`\ndemo failed: error ${code}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
