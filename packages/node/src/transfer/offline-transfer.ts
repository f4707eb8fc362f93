/**
 * Offline transfer (DESIGN flow 7, spec/node.md §7): the same sealed messages, carried as a file
 * where there is no network.
 *
 * A transfer file holds the JWEs exactly as they would be POSTed plus a manifest: a compact JWS by
 * the exporting node over `{format, from, to, createdAt, messages: [{id, digest}]}`. The manifest
 * binds every message's exact bytes by digest, which authenticates the file without HTTP message
 * signatures and without re-serialising JSON (and keeps the signed part small however many
 * messages travel). On import each message runs through the same acceptance path as POST /inbox.
 * The receipts go into an answer file that the exporting node imports to end its messages; the
 * receipts are signed one by one, so the answer file needs no signature of its own.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import {
  Digest,
  MessageId,
  messageOutcomeEvent,
  NodeId,
  parseJson,
  peekCompactPayload,
  ProtocolError,
  sha256b64u,
  signCompact,
  Timestamp,
  toTimestamp,
  verifyCompact,
  verifyReceipt,
} from '@passerelle/protocol';
import type { Logger } from 'pino';
import type { NodeEvents } from '../events.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { acceptInbound, MessageRejected, type AcceptDeps } from '../inbox/accept-inbound.js';
import { problemFrom } from '../http/problem.js';
import type { OutboxWorker } from '../outbox/worker.js';
import type { Store } from '../store/types.js';
import type { TrustStore } from '../trust/trust-store.js';
import { verifyReceiptCheckpoint } from '../audit/receipt-checkpoint.js';

export const TRANSFER_FORMAT = 'passerelle-transfer/1';
export const TRANSFER_ANSWER_FORMAT = 'passerelle-transfer-answer/1';
export const TRANSFER_MANIFEST_TYP = 'passerelle-transfer+jwt';
const MAX_FILE_BYTES = 256 * 1024 * 1024;
const MAX_MESSAGES = 10_000;

const Manifest = z.strictObject({
  format: z.literal(TRANSFER_FORMAT),
  from: NodeId,
  to: NodeId,
  createdAt: Timestamp,
  messages: z.array(z.strictObject({ id: MessageId, digest: Digest })).max(MAX_MESSAGES),
});

const TransferFile = z.strictObject({
  format: z.literal(TRANSFER_FORMAT),
  manifest: z.string().max(4 * 1024 * 1024),
  messages: z.array(z.strictObject({ id: MessageId, jwe: z.string().max(4 * 1024 * 1024) })).max(MAX_MESSAGES),
});

const AnswerFile = z.strictObject({
  format: z.literal(TRANSFER_ANSWER_FORMAT),
  from: NodeId,
  to: NodeId,
  createdAt: Timestamp,
  answers: z
    .array(z.strictObject({ id: MessageId, receipt: z.string().max(16_384).optional(), problem: z.record(z.string(), z.unknown()).optional() }))
    .max(MAX_MESSAGES),
});

export interface TransferDeps {
  identity: NodeIdentity;
  store: Store;
  trust: TrustStore;
  accept: AcceptDeps;
  logger: Logger;
  events: NodeEvents;
  now: () => Date;
}

export interface ExportResult {
  file: string;
  messages: string[];
}

export interface ImportResult {
  from: string;
  accepted: string[];
  duplicates: string[];
  rejected: { id: string; code: string }[];
  answerFile: string;
}

export interface AnswerImportResult {
  delivered: string[];
  rejected: string[];
  /** Already in a final state (delivered over the network meanwhile, failed, cancelled). */
  alreadyFinal: string[];
  /** Leased by a delivery attempt in progress: import the answer again later. */
  busy: string[];
  /** Answers for messages this node did not send to that peer, or with an invalid receipt. */
  ignored: string[];
}

async function readJsonFile(file: string): Promise<unknown> {
  const bytes = await readFile(file);
  if (bytes.length > MAX_FILE_BYTES) throw new ProtocolError('TOO_LARGE', 'Transfer file too large');
  return parseJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
}

function schemaError(what: string, error: z.ZodError): ProtocolError {
  return new ProtocolError('SCHEMA_INVALID', `Invalid ${what}`, {
    issues: error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
  });
}

export async function exportForPeer(deps: TransferDeps, peer: string, file: string): Promise<ExportResult> {
  if (!deps.trust.isPinned(peer)) throw new ProtocolError('PEER_UNKNOWN', undefined, { nodeId: peer });
  const now = deps.now();
  const entries = (await deps.store.listOutbox({ peer, state: 'queued' })).filter((e) => Date.parse(e.expiresAt) > now.getTime()).slice(0, MAX_MESSAGES);
  entries.sort((a, b) => a.priority - b.priority || a.createdAt.localeCompare(b.createdAt));
  const manifest = {
    format: TRANSFER_FORMAT,
    from: deps.identity.id,
    to: peer,
    createdAt: toTimestamp(now),
    messages: entries.map((e) => ({ id: e.id, digest: e.digest })),
  };
  const signed = await signCompact(manifest, deps.identity.signingKey(now), TRANSFER_MANIFEST_TYP);
  const content = { format: TRANSFER_FORMAT, manifest: signed, messages: entries.map((e) => ({ id: e.id, jwe: e.jwe })) };
  await writeFile(file, `${JSON.stringify(content)}\n`, { mode: 0o600 });
  await deps.store.appendAudit({ kind: 'transfer.exported', fields: { peer, messages: entries.map((e) => e.id) }, at: now.toISOString() });
  return { file, messages: entries.map((e) => e.id) };
}

export async function importTransfer(deps: TransferDeps, file: string, answerFile: string): Promise<ImportResult> {
  const parsed = TransferFile.safeParse(await readJsonFile(file));
  if (!parsed.success) throw schemaError('transfer file', parsed.error);
  const claimed = Manifest.safeParse(peekCompactPayload(parsed.data.manifest));
  if (!claimed.success) throw schemaError('transfer manifest', claimed.error);
  const from = claimed.data.from;
  // Only a pinned peer's file is read at all: the same rule as an unknown keyid on POST /inbox.
  if (!deps.trust.isPinned(from)) throw new ProtocolError('PEER_UNKNOWN', undefined, { nodeId: from });
  const now = deps.now();
  if (Date.parse(claimed.data.createdAt) > now.getTime() + 300_000) {
    throw new ProtocolError('CLOCK_SKEW', 'The transfer file is dated in the future', { serverTime: toTimestamp(now) });
  }
  const verified = await verifyCompact(parsed.data.manifest, TRANSFER_MANIFEST_TYP, (kid) =>
    deps.trust.signingKeyWithRefresh(from, kid, claimed.data.createdAt),
  );
  const manifest = Manifest.parse(verified.payload);
  if (manifest.to !== deps.identity.id) throw new ProtocolError('AUDIENCE_MISMATCH', 'The transfer file is for another node');
  const digests = new Map(manifest.messages.map((m) => [m.id, m.digest]));
  if (digests.size !== manifest.messages.length || parsed.data.messages.length !== manifest.messages.length) {
    throw new ProtocolError('MALFORMED', 'The messages do not match the manifest');
  }

  const result: ImportResult = { from, accepted: [], duplicates: [], rejected: [], answerFile };
  const answers: z.infer<typeof AnswerFile>['answers'] = [];
  for (const m of parsed.data.messages) {
    const digest = await sha256b64u(m.jwe);
    if (digests.get(m.id) !== digest) {
      // Bytes the manifest does not name were not signed by the sender: no receipt, no problem sent back for them.
      result.rejected.push({ id: m.id, code: 'SIGNATURE_INVALID' });
      continue;
    }
    try {
      const accepted = await acceptInbound(deps.accept, m.jwe, from, digest);
      (accepted.status === 'stored' ? result.accepted : result.duplicates).push(accepted.entry.id);
      answers.push({ id: m.id, receipt: accepted.receipt });
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      result.rejected.push({ id: m.id, code: e.code });
      answers.push({ id: m.id, ...(e instanceof MessageRejected && e.receipt ? { receipt: e.receipt } : {}), problem: { ...problemFrom(e) } });
    }
  }
  const answer = { format: TRANSFER_ANSWER_FORMAT, from: deps.identity.id, to: from, createdAt: toTimestamp(now), answers };
  await writeFile(answerFile, `${JSON.stringify(answer)}\n`, { mode: 0o600 });
  await deps.store.appendAudit({
    kind: 'transfer.imported',
    fields: { peer: from, accepted: result.accepted, duplicates: result.duplicates, rejected: result.rejected.map((r) => r.id) },
    at: now.toISOString(),
  });
  return result;
}

/**
 * Ends exported messages from the peer's answer file. A message is ended only by a receipt that
 * verifies (signed by that peer, for this id and these exact bytes); an unsigned problem changes
 * nothing, since anyone could have written it.
 */
const ANSWER_CLAIM_ROUNDS = 20;
const ANSWER_CLAIM_PAUSE_MS = 100;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function importTransferAnswer(deps: TransferDeps & { worker: OutboxWorker | undefined }, file: string): Promise<AnswerImportResult> {
  const parsed = AnswerFile.safeParse(await readJsonFile(file));
  if (!parsed.success) throw schemaError('transfer answer file', parsed.error);
  const answer = parsed.data;
  if (answer.to !== deps.identity.id) throw new ProtocolError('AUDIENCE_MISMATCH', 'The answer file is for another node');
  const result: AnswerImportResult = { delivered: [], rejected: [], alreadyFinal: [], busy: [], ignored: [] };
  const now = deps.now();
  const verdicts = new Map<string, { status: 'accepted' | 'rejected'; receipt: string; problem?: string }>();
  let latestDue = now.getTime();
  for (const a of answer.answers) {
    const entry = await deps.store.getOutbox(a.id);
    if (!entry || entry.peer !== answer.from || a.receipt === undefined) {
      result.ignored.push(a.id);
      continue;
    }
    let status: 'accepted' | 'rejected';
    try {
      ({ status } = await verifyReceipt(a.receipt, {
        receiver: entry.peer,
        sender: deps.identity.id,
        messageId: entry.id,
        digest: entry.digest,
        resolveKey: (kid) => deps.trust.signingKeyWithRefresh(entry.peer, kid, now),
      }));
      await verifyReceiptCheckpoint(a.receipt, entry.peer, (nodeId, kid, at) => (nodeId === entry.peer ? deps.trust.signingKeyWithRefresh(nodeId, kid, at) : undefined));
    } catch {
      result.ignored.push(a.id);
      continue;
    }
    if (entry.state !== 'queued') {
      result.alreadyFinal.push(a.id);
      continue;
    }
    verdicts.set(a.id, { status, receipt: a.receipt, ...(a.problem ? { problem: JSON.stringify(a.problem) } : {}) });
    latestDue = Math.max(latestDue, Date.parse(entry.nextAttemptAt));
  }
  // A message whose lease the worker holds (an attempt over the network is under way) is retried
  // for a short while: the attempt ends quickly when the peer is unreachable, and the answer in
  // hand is the better outcome. Only what is still leased after that is reported as busy.
  for (let round = 0; verdicts.size > 0 && round < ANSWER_CLAIM_ROUNDS; round++) {
    if (round > 0) {
      await sleep(ANSWER_CLAIM_PAUSE_MS);
      // A failed attempt in between has moved the entry's next attempt later (backoff).
      for (const id of verdicts.keys()) {
        const current = await deps.store.getOutbox(id);
        if (current) latestDue = Math.max(latestDue, Date.parse(current.nextAttemptAt));
      }
    }
    // Ending a message needs its lease. Claiming "as of" the latest due time reaches messages in
    // backoff too; other messages claimed along the way are delayed at most until that time
    // + 1 ms (bounded by the backoff cap), then the worker claims them as usual.
    const owner = `offline-answer:${uuidv7()}`;
    const queued = (await deps.store.countOutboxByState()).queued;
    const claimed = await deps.store.claimDue({ now: new Date(latestDue).toISOString(), limit: queued, owner, leaseMs: 1 });
    const claimedIds = new Set(claimed.map((e) => e.id));
    // The claim's lease is kept minimal so that other messages claimed along the way are not held
    // back; if it lapses before `complete`, the answer is simply tried again in the next round.
    const lapsed: [string, (typeof verdicts extends Map<string, infer V> ? V : never)][] = [];
    for (const [id, v] of [...verdicts]) {
      if (!claimedIds.has(id)) continue;
      verdicts.delete(id);
      const at = deps.now().toISOString();
      // As for a delivery over HTTP, the entry names the receipt it stores (spec/audit.md §3.2).
      const outcome = messageOutcomeEvent({ messageId: id, peer: answer.from, digest: claimed.find((e) => e.id === id)!.digest, receipt: v.receipt }, v.status, at);
      const audit = { ...outcome, fields: { ...outcome.fields, via: 'transfer' } };
      const ok =
        v.status === 'accepted'
          ? await deps.store.complete(id, owner, { state: 'delivered', receipt: v.receipt, at }, audit)
          : await deps.store.complete(
              id,
              owner,
              { state: 'rejected', receipt: v.receipt, problem: v.problem ?? JSON.stringify({ code: peekCompactPayload(v.receipt).code }), at },
              audit,
            );
      if (!ok) lapsed.push([id, v]);
      else if (v.status === 'accepted') {
        result.delivered.push(id);
        deps.events.emit('outbox.delivered', { messageId: id, peer: answer.from, type: claimed.find((e) => e.id === id)!.type });
      } else result.rejected.push(id);
    }
    for (const [id, v] of lapsed) verdicts.set(id, v);
  }
  result.busy.push(...verdicts.keys());
  deps.worker?.wake();
  return result;
}
