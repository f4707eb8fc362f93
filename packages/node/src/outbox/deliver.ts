/**
 * One delivery attempt and its classification (spec/node.md §4.3): delivered only with a valid
 * receipt from the peer for this message id and these exact bytes; rejected when the peer names a
 * protocol code that makes the message itself unacceptable; everything else is retried.
 */
import { isErrorCode, parseJson, ProtocolError, utf8, verifyReceipt, type ErrorCode } from '@passerelle/protocol';
import type { NodeIdentity } from '../identity/node-identity.js';
import { readProblem } from '../http/problem.js';
import { JOSE_CONTENT_TYPE, postSigned, type PeerClientOptions, type PeerResponse } from '../net/peer-client.js';
import type { OutboxEntry } from '../store/types.js';
import type { TrustStore } from '../trust/trust-store.js';
import { parseRetryAfter } from './backoff.js';
import { verifyReceiptCheckpoint } from '../audit/receipt-checkpoint.js';

export type DeliveryOutcome =
  | { kind: 'delivered'; receipt: string }
  | { kind: 'rejected'; code: ErrorCode; problem: string; receipt?: string }
  | { kind: 'retry'; code: ErrorCode; detail: string; retryAfterMs?: number; transportFailure: boolean };

/**
 * Codes that describe the peer's state or the transport, not the message: the same bytes may be
 * accepted later (the peer pins us, refreshes our document, gets its store back...).
 */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'REQUEST_UNAUTHENTICATED',
  'PEER_UNKNOWN',
  'KEY_UNKNOWN',
  'KEY_NOT_VALID',
  'CLOCK_SKEW',
  'CONTENT_DIGEST_MISMATCH',
  'RATE_LIMITED',
  'STORE_UNAVAILABLE',
  'PEER_UNREACHABLE',
  'PEER_RESPONSE_INVALID',
  'INTERNAL',
]);

export interface DeliverDeps {
  identity: NodeIdentity;
  trust: TrustStore;
  client: PeerClientOptions;
  backoffCapMs: number;
  now: () => Date;
}

function jsonBody(res: PeerResponse): unknown {
  try {
    return parseJson(new TextDecoder('utf-8', { fatal: true }).decode(res.body));
  } catch {
    return undefined;
  }
}

async function checkReceipt(deps: DeliverDeps, entry: OutboxEntry, receipt: unknown, expected: 'accepted' | 'rejected'): Promise<string> {
  if (typeof receipt !== 'string') throw new ProtocolError('RECEIPT_INVALID', 'The answer carries no receipt');
  const now = deps.now();
  const payload = await verifyReceipt(receipt, {
    receiver: entry.peer,
    sender: deps.identity.id,
    messageId: entry.id,
    digest: entry.digest,
    resolveKey: (kid) => deps.trust.signingKeyWithRefresh(entry.peer, kid, now),
  });
  if (payload.status !== expected) throw new ProtocolError('RECEIPT_INVALID', `Expected a receipt saying ${expected}`);
  // The receiver's checkpoint, signed with a key it held when it signed it (spec/audit.md §3.2).
  await verifyReceiptCheckpoint(receipt, entry.peer, (nodeId, kid, at) => (nodeId === entry.peer ? deps.trust.signingKeyWithRefresh(nodeId, kid, at) : undefined));
  return receipt;
}

export async function deliver(deps: DeliverDeps, entry: OutboxEntry, inboxUrl: string): Promise<DeliveryOutcome> {
  let res: PeerResponse;
  try {
    res = await postSigned(deps.client, {
      url: inboxUrl,
      body: utf8(entry.jwe),
      contentType: JOSE_CONTENT_TYPE,
      key: deps.identity.signingKey(deps.now()),
      sender: deps.identity.id,
    });
  } catch (e) {
    const err = e instanceof ProtocolError ? e : new ProtocolError('PEER_UNREACHABLE', undefined, undefined, { cause: e });
    return { kind: 'retry', code: err.code, detail: err.message, transportFailure: true };
  }
  const retryAfterMs = parseRetryAfter(res.headers['retry-after'], deps.now().getTime(), deps.backoffCapMs);
  const withRetryAfter = retryAfterMs !== undefined ? { retryAfterMs } : {};
  if (res.status >= 500) {
    const problem = readProblem(jsonBody(res));
    return { kind: 'retry', code: problem?.code ?? 'PEER_RESPONSE_INVALID', detail: `HTTP ${res.status}`, transportFailure: true, ...withRetryAfter };
  }
  if (res.status === 200 || res.status === 202) {
    try {
      const body = jsonBody(res) as { receipt?: unknown } | undefined;
      return { kind: 'delivered', receipt: await checkReceipt(deps, entry, body?.receipt, 'accepted') };
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('RECEIPT_INVALID');
      return { kind: 'retry', code: 'RECEIPT_INVALID', detail: err.message, transportFailure: false };
    }
  }
  if (res.status >= 400) {
    const problem = readProblem(jsonBody(res));
    if (!problem || !isErrorCode(problem.code)) {
      return { kind: 'retry', code: 'PEER_RESPONSE_INVALID', detail: `HTTP ${res.status} without a problem document`, transportFailure: false, ...withRetryAfter };
    }
    if (RETRYABLE_CODES.has(problem.code)) {
      return { kind: 'retry', code: problem.code, detail: problem.detail ?? problem.title, transportFailure: false, ...withRetryAfter };
    }
    let receipt: string | undefined;
    if (problem.receipt !== undefined) {
      try {
        receipt = await checkReceipt(deps, entry, problem.receipt, 'rejected');
      } catch {
        // An unverifiable rejection receipt is dropped; the peer's problem still ends the message.
      }
    }
    return { kind: 'rejected', code: problem.code, problem: JSON.stringify(problem), ...(receipt ? { receipt } : {}) };
  }
  return { kind: 'retry', code: 'PEER_RESPONSE_INVALID', detail: `Unexpected HTTP ${res.status}`, transportFailure: false };
}
