/**
 * Multi-node test harness: real nodes on 127.0.0.1 (ephemeral ports), real SQLite files in temp
 * directories, fast timers. Fictional organisations and people only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createAgreement,
  toTimestamp,
  type AgreementFlow,
  type DataCategory,
  type NodeRole,
  type Purpose,
} from '@passerelle/protocol';
import { initNodeDir } from '../../src/init.js';
import { startNode, type RunningNode } from '../../src/node.js';
import type { NodeConfigInput } from '../../src/config.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function tempDir(prefix = 'passerelle-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export const FAST_CONFIG: Partial<NodeConfigInput> = {
  devMode: true,
  logLevel: 'silent',
  outbox: {
    pollIntervalMs: 40,
    backoffBaseMs: 40,
    backoffCapMs: 400,
    leaseMs: 6000,
    breakerThreshold: 3,
    breakerCooldownMs: 300,
    maxAttempts: 200,
  },
  limits: { outboundTimeoutMs: 2000, outboundConnectTimeoutMs: 1000, documentRefreshIntervalMs: 500 },
};

export interface NodeSpec {
  name: string;
  country: string;
  roles?: NodeRole[];
  languages?: string[];
  config?: Partial<NodeConfigInput>;
  /** The node's store (`postgres://…?schema=…`, `sqlite:…`); SQLite in the node's directory when absent. */
  store?: string;
}

export interface PreparedNode {
  dir: string;
  url: string;
  fingerprints: string[];
}

/** Creates a node directory on a free loopback port, without starting it. */
export async function prepareNode(spec: NodeSpec): Promise<PreparedNode> {
  const dir = await tempDir();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config: Partial<NodeConfigInput> = {
    ...FAST_CONFIG,
    ...spec.config,
    outbox: { ...FAST_CONFIG.outbox, ...spec.config?.outbox },
    limits: { ...FAST_CONFIG.limits, ...spec.config?.limits },
    ...(spec.store !== undefined ? { store: spec.store } : {}),
  };
  const init = await initNodeDir({
    dir,
    url,
    name: spec.name,
    country: spec.country,
    ...(spec.roles ? { roles: spec.roles } : {}),
    languages: spec.languages ?? ['fr', 'en'],
    config,
  });
  return { dir, url, fingerprints: init.fingerprints };
}

export interface ClusterOptions {
  /**
   * The store of each node the cluster creates, unless its spec names one: how one scenario runs
   * on SQLite and on PostgreSQL (a schema per node in one database).
   */
  store?: (spec: NodeSpec) => string | undefined;
}

export class Cluster {
  readonly nodes: RunningNode[] = [];
  readonly dirs: string[] = [];
  readonly #options: ClusterOptions;

  constructor(options: ClusterOptions = {}) {
    this.#options = options;
  }

  async start(spec: NodeSpec): Promise<RunningNode> {
    const store = spec.store ?? this.#options.store?.(spec);
    const prepared = await prepareNode(store !== undefined ? { ...spec, store } : spec);
    this.dirs.push(prepared.dir);
    return this.startDir(prepared.dir);
  }

  async startDir(dir: string, options: { listen?: boolean; worker?: boolean } = {}): Promise<RunningNode> {
    const node = await startNode({ dir, ...options });
    this.nodes.push(node);
    return node;
  }

  async stop(node: RunningNode): Promise<void> {
    await node.close();
    this.nodes.splice(this.nodes.indexOf(node), 1);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.close()));
    this.nodes.length = 0;
    await Promise.allSettled(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** Both administrators pin each other (fingerprints exchanged out of band). */
export async function pinEachOther(a: RunningNode, b: RunningNode): Promise<void> {
  await a.addPeer(b.id, b.fingerprints());
  await b.addPeer(a.id, a.fingerprints());
}

const ALL_CATEGORIES: DataCategory[] = [
  'identity',
  'contact',
  'civil-status',
  'documents',
  'family',
  'education-skills',
  'employment',
  'health',
  'vulnerability',
  'legal-status',
  'return-travel',
  'reintegration-plan',
  'monitoring',
];

export function referralAgreement(a: RunningNode, b: RunningNode, options: { validUntil?: Date; flows?: AgreementFlow[] } = {}) {
  const purposes: Purpose[] = ['referral', 'reintegration-planning', 'reintegration-assistance', 'monitoring', 'case-coordination'];
  return createAgreement({
    title: 'Cooperation on assisted return and reintegration',
    parties: [
      { node: a.id, role: 'reception-agency', name: a.config.name },
      { node: b.id, role: 'reintegration-partner', name: b.config.name },
    ],
    purposes,
    flows: options.flows ?? [
      {
        from: a.id,
        to: b.id,
        messageTypes: ['referral', 'reintegration-profile', 'case-closure', 'consent-withdrawal', 'problem-report'],
        categories: ALL_CATEGORIES,
      },
      {
        from: b.id,
        to: a.id,
        messageTypes: ['referral-response', 'reintegration-update', 'erasure-confirmation', 'problem-report', 'case-closure'],
        categories: ['contact', 'monitoring'],
      },
    ],
    onwardReferral: { allowed: false },
    retention: ALL_CATEGORIES.map((category) => ({ category, days: 730 })),
    legalBasis: { basis: 'consent', reference: 'Regulation (EU) 2016/679, art. 6(1)(a) and 9(2)(a)' },
    validFrom: toTimestamp(Date.now() - 24 * 3600_000),
    validUntil: toTimestamp(options.validUntil ?? new Date(Date.now() + 365 * 24 * 3600_000)),
  });
}

/** Both parties sign and register the agreement; returns its id. */
export async function coSign(a: RunningNode, b: RunningNode, options: Parameters<typeof referralAgreement>[2] = {}): Promise<string> {
  const payload = referralAgreement(a, b, options);
  const signedByA = await a.signAgreement(payload);
  const signedByBoth = await b.signAgreement(signedByA);
  await a.registerAgreement(signedByBoth);
  await b.registerAgreement(signedByBoth);
  return payload.id;
}

export const CONSENT_TEXT_DIGEST = 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg';

export async function recordConsent(a: RunningNode, recipients: string[], overrides: Record<string, unknown> = {}) {
  return a.recordConsent({
    subject: 'case-be-2026-0042',
    purposes: ['referral', 'reintegration-planning'],
    recipients,
    categories: ['identity', 'contact', 'health', 'return-travel'],
    explicitConsent: ['health'],
    collection: {
      method: 'written',
      language: 'fr',
      interpreter: { kind: 'intercultural-mediator', language: 'wo' },
      text: { version: '2026-01', digest: CONSENT_TEXT_DIGEST },
    },
    collectedAt: toTimestamp(Date.now()),
    expiresAt: toTimestamp(Date.now() + 180 * 24 * 3600_000),
    collectedBy: { role: 'caseworker', staffRef: 'cw-017' },
    ...overrides,
  } as Parameters<RunningNode['recordConsent']>[0]);
}

export function referralInput(to: string, agreementId: string, consentId: string, extra: Record<string, unknown> = {}) {
  return {
    type: 'referral' as const,
    to,
    agreementId,
    consentId,
    body: { subject: 'case-be-2026-0042', services: ['reintegration-support', 'medical'], urgency: 'routine', reasonCode: 'pre-departure' },
    data: {
      identity: { givenName: 'Awa', familyName: 'Exemple', dateOfBirth: '1994-03-12', nationalities: ['SN'], preferredLanguages: ['fr', 'wo'] },
      contact: { phone: '+32 470 00 00 00' },
      health: { needs: ['Follow-up for a chronic condition'], followUpRequired: true },
      'return-travel': { plannedDeparture: '2026-12-15', destinationCountry: 'SN', destinationLocality: 'Thiès' },
    },
    ...extra,
  };
}

export async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, stepMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('waitFor: timed out');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export interface RawPost {
  url: string;
  body: string | Uint8Array;
  key: import('@passerelle/protocol').SigningKeyPair;
  sender?: string;
  /** Replace the body after signing (a tampered request). */
  tamperedBody?: string;
  contentType?: string;
}

/** POSTs a body to a node's inbox the way a peer does (Content-Digest + RFC 9421 signature). */
export async function postSignedRaw(input: RawPost): Promise<{ status: number; json: Record<string, unknown> | undefined; headers: Headers }> {
  const { contentDigest } = await import('../../src/http/content-digest.js');
  const { signRequest } = await import('../../src/http/message-signatures.js');
  const bytes = typeof input.body === 'string' ? new TextEncoder().encode(input.body) : input.body;
  const headers: Record<string, string> = {
    'content-type': input.contentType ?? 'application/jose',
    'content-digest': contentDigest(bytes),
    ...(input.sender ? { 'passerelle-sender': input.sender } : {}),
  };
  const sig = await signRequest({ method: 'POST', url: input.url, headers, key: input.key });
  const res = await fetch(input.url, {
    method: 'POST',
    headers: { ...headers, ...sig },
    body: input.tamperedBody !== undefined ? input.tamperedBody : (bytes as Uint8Array<ArrayBuffer>),
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, headers: res.headers };
}
