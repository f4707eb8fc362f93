/**
 * Audit bundle export (spec/audit.md §4, spec/node.md §9.4): everything an auditor needs to check
 * offline, without trusting this node, what it sent and received in a scope — node documents of
 * every party, agreements, consent records and their withdrawals, the issuer-signed part of each
 * message with its receipt, the log entries that record them with their proofs, this node's
 * checkpoints and the peers' checkpoints received in receipts — assembled and attested with the
 * protocol's buildBundle, so that verifyBundle accepts it.
 *
 * By default a bundle carries no personal data. `withDisclosures` adds the disclosures this node
 * still holds (received messages not erased; a sent message's disclosures travelled encrypted to
 * its recipient and were never kept) for a lawful full audit.
 */
import {
  AuditEvents,
  BundleScope,
  buildBundle,
  logProofs,
  MessageTypes,
  peekCompactPayload,
  ProtocolError,
  receiptDigest,
  splitSdJwt,
  type AuditBundle,
  type AuditLeaf,
  type BundleAgreement,
  type BundleConsent,
  type BundleMessage,
  type BundleNode,
  type BundleWithdrawal,
  type GeneralJws,
  type MessageHeader,
  type Purpose,
} from '@passerelle/protocol';
import type { NodeIdentity } from '../identity/node-identity.js';
import { claimsOfQueued } from '../outbox/message-claims.js';
import type { AuditRecord, CheckpointRecord, InboxEntry, OutboxEntry, Store } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { NodeAuditEvents } from './audit-events.js';
import { AUDIT_PAGE_SIZE } from './startup-check.js';

export type BundleScopeKind = BundleScope['kind'];

export interface AuditExportOptions {
  /** A scope (spec/audit.md §4.2), or its kind with the members below. Default: `all`. */
  scope?: BundleScope | BundleScopeKind;
  /** For `range`: messages created in [from, to) (RFC 3339 UTC). */
  from?: string;
  to?: string;
  threadId?: string;
  consentId?: string;
  peer?: string;
  /** Include the disclosures still held: a lawful full audit only (spec/audit.md §4.3). */
  withDisclosures?: boolean;
  /** Same as `withDisclosures`, in the bundle's own terms (the CLI passes this). */
  personalData?: 'none' | 'lawful-full-audit';
  /** Who asked, for the `audit.exported` entry (a token id on the local API). Default `local`. */
  reader?: string;
}

export interface BundleExportDeps {
  /** The store the node writes through (the export appends its own `audit.exported` entry). */
  store: Store;
  identity: NodeIdentity;
  auditLog: AuditLog;
  now: () => Date;
}

/** More checkpoints than this are thinned out evenly (the latest always kept); each one left out is still tied by proofs. */
export const MAX_EXPORTED_CHECKPOINTS = 10_000;

/** The bundle scope an export asks for; SCHEMA_INVALID when it is not one. */
export function exportScope(options: AuditExportOptions = {}): BundleScope {
  const requested = options.scope ?? 'all';
  const raw =
    typeof requested !== 'string'
      ? requested
      : requested === 'range'
        ? { kind: requested, from: options.from, to: options.to }
        : requested === 'thread'
          ? { kind: requested, threadId: options.threadId }
          : requested === 'consent'
            ? { kind: requested, consentId: options.consentId }
            : requested === 'peer'
              ? { kind: requested, peer: options.peer }
              : { kind: requested };
  const parsed = BundleScope.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError('SCHEMA_INVALID', `Invalid export scope${issue ? ` at ${issue.path.join('.') || 'kind'}: ${issue.message}` : ''}`);
  }
  const scope = parsed.data;
  if (scope.kind === 'range' && Date.parse(scope.to) <= Date.parse(scope.from)) throw new ProtocolError('SCHEMA_INVALID', 'A range ends after it starts');
  return scope;
}

export function exportPersonalData(options: AuditExportOptions = {}): 'none' | 'lawful-full-audit' {
  if (options.personalData !== undefined && options.personalData !== 'none' && options.personalData !== 'lawful-full-audit') {
    throw new ProtocolError('SCHEMA_INVALID', 'personalData is none or lawful-full-audit');
  }
  return options.personalData === 'lawful-full-audit' || options.withDisclosures === true ? 'lawful-full-audit' : 'none';
}

/** Whether a message lies within the scope: the rule the verifier applies (spec/audit.md §4.2). */
function inScope(scope: BundleScope, h: MessageHeader, body: unknown, direction: 'sent' | 'received'): boolean {
  switch (scope.kind) {
    case 'all':
      return true;
    case 'thread':
      return h.threadId === scope.threadId;
    case 'consent':
      return (h.consentId ?? (body as { consentId?: unknown } | null)?.consentId) === scope.consentId;
    case 'peer':
      return (direction === 'sent' ? h.to : h.from) === scope.peer;
    case 'range': {
      const t = Date.parse(h.created);
      return t >= Date.parse(scope.from) && t < Date.parse(scope.to);
    }
  }
}

function toLeaf(record: AuditRecord): AuditLeaf {
  return { index: record.index, kind: record.kind, fields: record.fields, at: record.at };
}

interface LogIndex {
  /** Every entry, for a whole-log export. */
  all: AuditLeaf[] | undefined;
  sent: Map<string, AuditLeaf>;
  received: Map<string, AuditLeaf>;
  /** message.delivered / message.rejected entries by message id. */
  outcomes: Map<string, AuditLeaf[]>;
  /** Every entry naming a message, by message id. */
  byMessage: Map<string, number[]>;
  /** Every entry naming a consent, by consent id. */
  byConsent: Map<string, number[]>;
  /** consent.withdrawn entries by consent id. */
  withdrawn: Map<string, AuditLeaf[]>;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** One pass over the entries below the checkpoint: what records which message, consent and withdrawal. */
async function scanLog(store: Store, size: number, keepAll: boolean): Promise<LogIndex> {
  const index: LogIndex = {
    all: keepAll ? [] : undefined,
    sent: new Map(),
    received: new Map(),
    outcomes: new Map(),
    byMessage: new Map(),
    byConsent: new Map(),
    withdrawn: new Map(),
  };
  for (let from = 0; from < size; from += AUDIT_PAGE_SIZE) {
    for (const record of await store.readAudit(from, Math.min(size, from + AUDIT_PAGE_SIZE))) {
      const leaf = toLeaf(record);
      index.all?.push(leaf);
      const { messageId, consentId } = record.fields;
      if (typeof messageId === 'string') {
        push(index.byMessage, messageId, record.index);
        if (record.kind === AuditEvents.MESSAGE_SENT && !index.sent.has(messageId)) index.sent.set(messageId, leaf);
        if (record.kind === AuditEvents.MESSAGE_RECEIVED && !index.received.has(messageId)) index.received.set(messageId, leaf);
        if (record.kind === AuditEvents.MESSAGE_DELIVERED || record.kind === AuditEvents.MESSAGE_REJECTED) push(index.outcomes, messageId, leaf);
      }
      if (typeof consentId === 'string') {
        push(index.byConsent, consentId, record.index);
        if (record.kind === AuditEvents.CONSENT_WITHDRAWN) push(index.withdrawn, consentId, leaf);
      }
    }
  }
  return index;
}

interface Selected {
  header: MessageHeader;
  body: unknown;
  consentRecord?: string;
  /** The original of an onward message: its issuer and agreement must be in the bundle too. */
  original?: { from: string; agreementId: string };
  receipt?: string;
}

function selectedOf(jwt: string, receipt: string | undefined): Selected {
  const claims = claimsOfQueued(jwt);
  const payload = peekCompactPayload(jwt);
  let original: Selected['original'];
  const provenance = payload.provenance as { jwt?: unknown } | undefined;
  if (typeof provenance?.jwt === 'string') {
    const p = peekCompactPayload(provenance.jwt);
    if (typeof p.iss === 'string' && typeof p.agreement === 'string') original = { from: p.iss, agreementId: p.agreement };
  }
  return {
    header: claims.header,
    body: payload.body,
    ...(claims.consentRecord ? { consentRecord: claims.consentRecord } : {}),
    ...(original ? { original } : {}),
    ...(receipt ? { receipt } : {}),
  };
}

function receiptCheckpoint(receipt: string): string | undefined {
  const log = (peekCompactPayload(receipt) as { log?: { checkpoint?: unknown } }).log;
  return typeof log?.checkpoint === 'string' ? log.checkpoint : undefined;
}

/** Outbox and inbox entries worth reading for the scope (the rest cannot be in it). */
function outboxFilter(scope: BundleScope): Parameters<Store['listOutbox']>[0] {
  if (scope.kind === 'thread') return { threadId: scope.threadId };
  if (scope.kind === 'peer') return { peer: scope.peer };
  return {};
}

function inboxFilter(scope: BundleScope): Parameters<Store['listInbox']>[0] {
  if (scope.kind === 'thread') return { threadId: scope.threadId };
  if (scope.kind === 'peer') return { sender: scope.peer };
  return {};
}

function sentRecord(entry: OutboxEntry, leaf: AuditLeaf, index: LogIndex): BundleMessage {
  // A receipt goes in only with the log entry that recorded it below the checkpoint (spec/audit.md §5.6).
  let receipt = entry.state === 'delivered' || entry.state === 'rejected' ? entry.receipt : undefined;
  if (receipt !== undefined) {
    const digest = receiptDigest(receipt);
    if (!(index.outcomes.get(entry.id) ?? []).some((l) => l.fields.receipt === digest && l.fields.digest === entry.digest)) receipt = undefined;
  }
  return { direction: 'sent', jwt: entry.jwt, jweDigest: entry.digest, sentAt: leaf.at, leafIndex: leaf.index, ...(receipt ? { receipt } : {}) };
}

function receivedRecord(entry: InboxEntry, leaf: AuditLeaf, withDisclosures: boolean): BundleMessage {
  const disclosures = withDisclosures && entry.sdJwt !== undefined && entry.erasedAt === undefined ? splitSdJwt(entry.sdJwt).disclosures : undefined;
  return {
    direction: 'received',
    jwt: entry.jwt,
    ...(disclosures ? { disclosures } : {}),
    jweDigest: entry.digest,
    sentAt: leaf.at,
    receipt: entry.receipt,
    leafIndex: leaf.index,
  };
}

/** Every kept version of a node's document, oldest first; for a peer, the version held now as well. */
async function nodeHistory(store: Store, identity: NodeIdentity, nodeId: string): Promise<BundleNode | undefined> {
  const versions = new Map<number, string>();
  for (const d of await store.listNodeDocuments(nodeId)) versions.set(d.version, d.jws);
  if (nodeId === identity.id) versions.set(identity.document.version, JSON.stringify(identity.documentJws));
  else {
    const peer = await store.getPeer(nodeId);
    if (peer?.document && peer.documentVersion !== undefined && !versions.has(peer.documentVersion)) versions.set(peer.documentVersion, peer.document);
  }
  if (versions.size === 0) return undefined;
  const documents = [...versions.entries()].sort(([a], [b]) => a - b).map(([, jws]) => JSON.parse(jws) as GeneralJws);
  return { id: nodeId, documents };
}

/** This node's checkpoints up to `latest`, oldest first, thinned evenly beyond MAX_EXPORTED_CHECKPOINTS. */
async function ownCheckpoints(store: Store, latest: CheckpointRecord): Promise<CheckpointRecord[]> {
  const all: CheckpointRecord[] = [];
  for (let page = await store.listCheckpoints(-1, AUDIT_PAGE_SIZE); page.length > 0; page = await store.listCheckpoints(all[all.length - 1]!.size, AUDIT_PAGE_SIZE)) {
    for (const cp of page) if (cp.size <= latest.size) all.push(cp);
    if (page[page.length - 1]!.size >= latest.size) break;
  }
  if (all.length === 0 || all[all.length - 1]!.size !== latest.size) all.push(latest);
  if (all.length <= MAX_EXPORTED_CHECKPOINTS) return all;
  const step = all.length / (MAX_EXPORTED_CHECKPOINTS - 1);
  const kept = Array.from({ length: MAX_EXPORTED_CHECKPOINTS - 1 }, (_, i) => all[Math.floor(i * step)]!);
  return [...kept, all[all.length - 1]!];
}

/** Reads the entries at `indexes` (sorted, distinct), a run of consecutive indexes per query. */
async function readLeaves(store: Store, indexes: readonly number[]): Promise<AuditLeaf[]> {
  const out: AuditLeaf[] = [];
  for (let i = 0; i < indexes.length; ) {
    let j = i;
    while (j + 1 < indexes.length && indexes[j + 1] === indexes[j]! + 1 && j + 1 - i < AUDIT_PAGE_SIZE) j++;
    for (const record of await store.readAudit(indexes[i]!, indexes[j]! + 1)) out.push(toLeaf(record));
    i = j + 1;
  }
  return out;
}

/**
 * Builds, attests and returns an audit bundle of this node (spec/audit.md §4). The export itself is
 * recorded first (`audit.exported`), then a checkpoint is signed, so that the bundle covers the log
 * up to and including its own export.
 */
export async function buildAuditBundle(deps: BundleExportDeps, options: AuditExportOptions = {}): Promise<AuditBundle> {
  const scope = exportScope(options);
  const personalData = exportPersonalData(options);
  const { store, identity, auditLog } = deps;
  await store.putNodeDocument({ nodeId: identity.id, version: identity.document.version, jws: JSON.stringify(identity.documentJws) });
  const { kind: _kind, ...scopeFields } = scope;
  await store.appendAudit({
    kind: NodeAuditEvents.AUDIT_EXPORTED,
    fields: { scope: scope.kind, ...scopeFields, personalData, reader: options.reader ?? 'local' },
    at: deps.now().toISOString(),
  });
  const latest = await auditLog.checkpoint();
  const size = latest.size;
  const index = await scanLog(store, size, scope.kind === 'all');

  // Messages and erasure confirmations in scope, each with the entry that recorded it below the checkpoint.
  const messages: BundleMessage[] = [];
  const erasures: BundleMessage[] = [];
  const selected: Selected[] = [];
  for (const entry of await store.listOutbox(outboxFilter(scope))) {
    const leaf = index.sent.get(entry.id);
    if (!leaf) continue;
    const record = sentRecord(entry, leaf, index);
    const s = selectedOf(entry.jwt, record.receipt);
    if (!inScope(scope, s.header, s.body, 'sent')) continue;
    (entry.type === MessageTypes.ERASURE_CONFIRMATION ? erasures : messages).push(record);
    selected.push(s);
  }
  for (const entry of await store.listInbox(inboxFilter(scope))) {
    const leaf = index.received.get(entry.id);
    if (!leaf) continue;
    const s = selectedOf(entry.jwt, entry.receipt);
    if (!inScope(scope, s.header, s.body, 'received')) continue;
    (entry.type === MessageTypes.ERASURE_CONFIRMATION ? erasures : messages).push(receivedRecord(entry, leaf, personalData === 'lawful-full-audit'));
    selected.push(s);
  }
  messages.sort((a, b) => a.leafIndex - b.leafIndex);
  erasures.sort((a, b) => a.leafIndex - b.leafIndex);

  // Consents: every record a message carries (exactly as carried), the one each message names, and
  // each consent's withdrawals, attested by our own log entry or by the controller's signed message.
  const consentJws = new Map<string, string>();
  const consentIds = new Set<string>();
  const addConsentJws = (jws: string) => {
    const id = peekCompactPayload(jws).id;
    if (typeof id === 'string' && !consentJws.has(jws)) consentJws.set(jws, id);
    if (typeof id === 'string') consentIds.add(id);
  };
  for (const s of selected) {
    if (s.consentRecord) addConsentJws(s.consentRecord);
    if (s.header.consentId) consentIds.add(s.header.consentId);
    const named = (s.body as { consentId?: unknown } | null)?.consentId;
    if (typeof named === 'string') consentIds.add(named);
  }
  if (scope.kind === 'consent') consentIds.add(scope.consentId);
  if (scope.kind === 'all') for (const row of await store.listConsents()) consentIds.add(row.id);
  const withdrawalLeaves: number[] = [];
  const withdrawalsOf = new Map<string, { jws: string; withdrawals: BundleWithdrawal[] }>();
  for (const id of consentIds) {
    const row = await store.getConsent(id);
    if (!row) continue;
    addConsentJws(row.jws);
    const withdrawals: BundleWithdrawal[] = [];
    if (row.controller === identity.id) {
      for (const leaf of index.withdrawn.get(id) ?? []) {
        const { withdrawnAt, purposes } = leaf.fields;
        if (typeof withdrawnAt !== 'string') continue;
        withdrawals.push({ at: withdrawnAt, ...(Array.isArray(purposes) && purposes.length > 0 ? { purposes: purposes as Purpose[] } : {}), leafIndex: leaf.index });
        withdrawalLeaves.push(leaf.index);
      }
    } else {
      for (const entry of await store.listInbox({ consentId: id, sender: row.controller })) {
        if (entry.type !== MessageTypes.CONSENT_WITHDRAWAL) continue;
        const body = peekCompactPayload(entry.jwt).body as { consentId?: unknown; purposes?: unknown; withdrawnAt?: unknown } | undefined;
        if (body?.consentId !== id || typeof body.withdrawnAt !== 'string') continue;
        const purposes = Array.isArray(body.purposes) && body.purposes.length > 0 ? { purposes: body.purposes as Purpose[] } : {};
        withdrawals.push({ at: body.withdrawnAt, ...purposes, messageJwt: entry.jwt });
      }
    }
    withdrawalsOf.set(id, { jws: row.jws, withdrawals });
  }
  // Withdrawals are listed once per consent, with the version this node holds.
  const consents: BundleConsent[] = [...consentJws.entries()].map(([jws, id]) => ({
    jws,
    withdrawals: withdrawalsOf.get(id)?.jws === jws ? withdrawalsOf.get(id)!.withdrawals : [],
  }));

  // Agreements the messages travelled under (and the originals' agreements for onward messages).
  const agreementIds = new Set<string>();
  for (const s of selected) {
    agreementIds.add(s.header.agreementId);
    if (s.original) agreementIds.add(s.original.agreementId);
  }
  if (scope.kind === 'all') for (const a of await store.listAgreements()) agreementIds.add(a.id);
  const agreements: BundleAgreement[] = [];
  const nodeIds = new Set<string>([identity.id]);
  for (const id of [...agreementIds].sort()) {
    const record = await store.getAgreement(id);
    if (!record) continue;
    const jws = JSON.parse(record.jws) as GeneralJws;
    agreements.push({ jws, terminations: record.terminations });
    const parties = (peekGeneralPayload(jws)?.parties ?? []) as { node?: unknown }[];
    for (const p of parties) if (typeof p.node === 'string') nodeIds.add(p.node);
  }

  // Key histories of every node that signed something in the bundle.
  for (const s of selected) {
    nodeIds.add(s.header.from);
    nodeIds.add(s.header.to);
    if (s.original) nodeIds.add(s.original.from);
  }
  for (const jws of consentJws.keys()) {
    const controller = peekCompactPayload(jws).controller;
    if (typeof controller === 'string') nodeIds.add(controller);
  }
  const nodes: BundleNode[] = [];
  for (const id of [identity.id, ...[...nodeIds].filter((n) => n !== identity.id).sort()]) {
    const history = await nodeHistory(store, identity, id);
    if (history) nodes.push(history);
  }

  // The peers' checkpoints received in their receipts; our own given out in ours.
  const peerCheckpoints = new Set<string>();
  const ownInReceipts: string[] = [];
  for (const m of [...messages, ...erasures]) {
    const cp = m.receipt ? receiptCheckpoint(m.receipt) : undefined;
    if (cp === undefined) continue;
    if (m.direction === 'sent') peerCheckpoints.add(cp);
    else ownInReceipts.push(cp);
  }

  const checkpoints = await ownCheckpoints(store, latest);
  const listed = new Set(checkpoints.map((c) => c.jws));
  const extraSizes = ownInReceipts.filter((jws) => !listed.has(jws)).map((jws) => peekCompactPayload(jws).size as number);

  let leaves: AuditLeaf[];
  if (index.all) leaves = index.all;
  else {
    const wanted = new Set<number>(withdrawalLeaves);
    for (const m of [...messages, ...erasures]) wanted.add(m.leafIndex);
    for (const s of selected) for (const i of index.byMessage.get(s.header.id) ?? []) wanted.add(i);
    if (scope.kind === 'consent') for (const i of index.byConsent.get(scope.consentId) ?? []) wanted.add(i);
    leaves = await readLeaves(store, [...wanted].filter((i) => i < size).sort((a, b) => a - b));
  }
  const proofs = logProofs({
    tree: auditLog.tree,
    checkpointSizes: checkpoints.map((c) => c.size),
    leafIndexes: leaves.map((l) => l.index),
    extraSizes,
  });

  // Not dated before the latest checkpoint it attests (spec/audit.md §5.7).
  const exportedAt = new Date(Math.max(deps.now().getTime(), Date.parse(latest.at)));
  return buildBundle(
    {
      exportedBy: identity.id,
      exportedAt,
      scope,
      personalData,
      nodes,
      agreements,
      consents,
      messages,
      erasures,
      log: { leaves, checkpoints: checkpoints.map((c) => c.jws), ...proofs },
      peerCheckpoints: [...peerCheckpoints],
    },
    identity.signingKey(exportedAt),
  );
}

function peekGeneralPayload(jws: GeneralJws): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The bundle export of a running node, for programs that hold one (the CLI). */
export async function exportAuditBundle(node: { exportAuditBundle(options?: AuditExportOptions): Promise<AuditBundle> }, options: AuditExportOptions = {}): Promise<AuditBundle> {
  return node.exportAuditBundle(options);
}
