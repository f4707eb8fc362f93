/**
 * What caseworkers read (spec/node.md §5): inbound messages with their disclosed personal data
 * (re-verified from the stored SD-JWT, never from a decoded copy), outbound messages with their
 * delivery state, and threads joining both. Every read of personal data is written to the audit log.
 */
import { peekCompactPayload, verifySdJwtMessage, type SenderKeyResolver } from '@passerelle/protocol';
import type { NodeIdentity } from '../identity/node-identity.js';
import { claimsOfQueued } from '../outbox/message-claims.js';
import type { InboxEntry, OutboxEntry, Store } from '../store/types.js';

export interface ViewDeps {
  identity: NodeIdentity;
  store: Store;
  resolveSenderKey: SenderKeyResolver;
  now: () => Date;
}

export interface InboxSummary {
  id: string;
  sender: string;
  type: string;
  threadId: string;
  consentId?: string;
  categories: string[];
  digest: string;
  receivedAt: string;
  erased: boolean;
}

export interface InboxMessage extends InboxSummary {
  header: Record<string, unknown>;
  body: unknown;
  /** Disclosed personal data by category; absent once erased. */
  data?: Record<string, unknown>;
  receipt: string;
}

export interface OutboxSummary {
  id: string;
  peer: string;
  type: string;
  threadId: string;
  consentId?: string;
  state: OutboxEntry['state'];
  attempts: number;
  digest: string;
  createdAt: string;
  expiresAt: string;
  nextAttemptAt?: string;
  deliveredAt?: string;
  lastError?: string;
  receipt?: string;
  problem?: unknown;
}

export function inboxSummary(e: InboxEntry): InboxSummary {
  return {
    id: e.id,
    sender: e.sender,
    type: e.type,
    threadId: e.threadId,
    ...(e.consentId ? { consentId: e.consentId } : {}),
    categories: e.categories,
    digest: e.digest,
    receivedAt: e.receivedAt,
    erased: e.erasedAt !== undefined,
  };
}

export function outboxSummary(e: OutboxEntry): OutboxSummary {
  return {
    id: e.id,
    peer: e.peer,
    type: e.type,
    threadId: e.threadId,
    ...(e.consentId ? { consentId: e.consentId } : {}),
    state: e.state,
    attempts: e.attempts,
    digest: e.digest,
    createdAt: e.createdAt,
    expiresAt: e.expiresAt,
    ...(e.state === 'queued' ? { nextAttemptAt: e.nextAttemptAt } : {}),
    ...(e.deliveredAt ? { deliveredAt: e.deliveredAt } : {}),
    ...(e.lastError ? { lastError: e.lastError } : {}),
    ...(e.receipt ? { receipt: e.receipt } : {}),
    ...(e.problem ? { problem: JSON.parse(e.problem) as unknown } : {}),
  };
}

/** Reads one inbound message with its disclosures; `reader` names the token for the audit event. */
export async function readInboxMessage(deps: ViewDeps, entry: InboxEntry, reader: string): Promise<InboxMessage> {
  const base = inboxSummary(entry);
  if (!entry.sdJwt) {
    const p = peekCompactPayload(entry.jwt);
    return { ...base, header: { id: p.jti, type: p.type, from: p.iss, to: p.aud, threadId: p.thread, agreementId: p.agreement, purpose: p.purpose }, body: p.body, receipt: entry.receipt };
  }
  const verified = await verifySdJwtMessage(entry.sdJwt, {
    self: deps.identity.id,
    expectedSender: entry.sender,
    resolveSenderKey: deps.resolveSenderKey,
    now: deps.now(),
    ignoreExpiry: true,
  });
  await deps.store.appendAudit({
    kind: 'personal-data.read',
    fields: { messageId: entry.id, reader, categories: entry.categories },
    at: deps.now().toISOString(),
  });
  return { ...base, header: verified.header as unknown as Record<string, unknown>, body: verified.body, data: verified.data, receipt: entry.receipt };
}

export interface ThreadSummary {
  threadId: string;
  peers: string[];
  inbound: number;
  outbound: number;
  lastActivity: string;
}

export async function listThreads(deps: ViewDeps, limit = 500): Promise<ThreadSummary[]> {
  const threads = new Map<string, ThreadSummary>();
  const touch = (threadId: string, peer: string, at: string, dir: 'inbound' | 'outbound') => {
    const t = threads.get(threadId) ?? { threadId, peers: [], inbound: 0, outbound: 0, lastActivity: at };
    if (!t.peers.includes(peer)) t.peers.push(peer);
    t[dir] += 1;
    if (at > t.lastActivity) t.lastActivity = at;
    threads.set(threadId, t);
  };
  for (const e of await deps.store.listInbox({ limit: 10_000 })) touch(e.threadId, e.sender, e.receivedAt, 'inbound');
  for (const e of await deps.store.listOutbox({ limit: 10_000 })) touch(e.threadId, e.peer, e.createdAt, 'outbound');
  return [...threads.values()].sort((a, b) => (a.lastActivity < b.lastActivity ? 1 : -1)).slice(0, limit);
}

export interface ThreadMessage {
  direction: 'inbound' | 'outbound';
  id: string;
  type: string;
  peer: string;
  at: string;
  header: Record<string, unknown>;
  body: unknown;
  data?: Record<string, unknown>;
  state?: OutboxEntry['state'];
  erased?: boolean;
}

/** A thread in time order; inbound personal data is disclosed (and each read audited). */
export async function readThread(deps: ViewDeps, threadId: string, reader: string): Promise<ThreadMessage[]> {
  const out: ThreadMessage[] = [];
  for (const e of await deps.store.listInbox({ threadId })) {
    const m = await readInboxMessage(deps, e, reader);
    out.push({ direction: 'inbound', id: e.id, type: e.type, peer: e.sender, at: e.receivedAt, header: m.header, body: m.body, ...(m.data ? { data: m.data } : {}), erased: m.erased });
  }
  for (const e of await deps.store.listOutbox({ threadId })) {
    const { header } = claimsOfQueued(e.jwt);
    // What we sent travels encrypted to the peer; the node keeps its signed clear part only.
    out.push({ direction: 'outbound', id: e.id, type: e.type, peer: e.peer, at: e.createdAt, header: header as unknown as Record<string, unknown>, body: peekCompactPayload(e.jwt).body, state: e.state });
  }
  return out.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}
