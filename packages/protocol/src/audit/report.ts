/**
 * The auditor's report (spec/audit.md §6): what was checked, and one entry per failure naming the
 * object, the check that failed and the protocol error code. `formatReport` renders it as the plain
 * text the `passerelle audit verify` command prints.
 */
import type { ErrorCode } from '../errors.js';

export const AUDIT_CHECKS = [
  'schema',
  'node-document',
  'signature',
  'key-validity',
  'claims',
  'consent',
  'agreement',
  'receipt',
  'inclusion',
  'consistency',
  'checkpoint',
  'cross-record',
  'scope',
] as const;
/**
 * schema: an entry does not match its schema. node-document: a key-history chain breaks.
 * signature / key-validity: a signature fails, or its key was not valid at signing time.
 * claims: a signed message's own claims are inconsistent (categories, type, time, disclosures).
 * consent / agreement: the enforcement decision of spec/consent-and-agreements.md §5 refuses it.
 * receipt: a receipt does not match its message. inclusion / consistency / checkpoint: the log's
 * Merkle proofs and signed checkpoints. cross-record: two records of the bundle disagree (a record
 * and its log entry, the attestation and the contents). scope: a record outside the declared scope.
 */
export type AuditCheck = (typeof AUDIT_CHECKS)[number];

export interface AuditFailure {
  /** Which object: `message <id>`, `receipt for message <id>`, `checkpoint 3`, `leaf 17`… */
  object: string;
  check: AuditCheck;
  code: ErrorCode;
  message: string;
}

export interface AuditCounts {
  nodes: number;
  nodeDocuments: number;
  agreements: number;
  terminations: number;
  consents: number;
  withdrawals: number;
  messages: number;
  erasures: number;
  receipts: number;
  /** Signature verifications performed (each distinct signed object once). */
  signatures: number;
  leaves: number;
  checkpoints: number;
  peerCheckpoints: number;
  inclusionProofs: number;
  consistencyProofs: number;
}

export interface AuditOutcomes {
  sent: number;
  received: number;
  /** Messages with an accepting receipt. */
  accepted: number;
  /** Messages with a rejecting receipt. */
  rejected: number;
  /** Sent messages without a receipt (not delivered when exported). */
  unacknowledged: number;
}

export interface AuditReport {
  ok: boolean;
  exportedBy: string | undefined;
  exportedAt: string | undefined;
  scope: unknown;
  /** The auditor's clock for the checks against the present (objects signed in the future). */
  verifiedAt: string;
  checked: AuditCounts;
  outcomes: AuditOutcomes;
  failures: AuditFailure[];
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-GB')} ${n === 1 ? one : many}`;
}

function scopeText(scope: unknown): string {
  const s = scope as Record<string, unknown> | undefined;
  switch (s?.kind) {
    case 'all':
      return 'whole log';
    case 'range':
      return `messages created from ${String(s.from)} to ${String(s.to)}`;
    case 'thread':
      return `thread ${String(s.threadId)}`;
    case 'consent':
      return `consent ${String(s.consentId)}`;
    case 'peer':
      return `exchanges with ${String(s.peer)}`;
    default:
      return 'unknown scope';
  }
}

/**
 * Plain text: a summary line, what was checked, then one line per failure
 * `✗ <object> — <check>: <code> (<message>)`.
 */
export function formatReport(report: AuditReport): string {
  const c = report.checked;
  const o = report.outcomes;
  const from = report.exportedBy ?? 'an unknown node';
  const when = report.exportedAt ? ` exported ${report.exportedAt}` : '';
  const verdict = report.ok ? '✓ verified' : `✗ ${plural(report.failures.length, 'failure')}`;
  const lines = [
    `Audit bundle from ${from}${when} (${scopeText(report.scope)}): ${verdict}`,
    `  ${plural(c.messages, 'message')} (${o.sent.toLocaleString('en-GB')} sent, ${o.received.toLocaleString('en-GB')} received; ` +
      `${o.accepted.toLocaleString('en-GB')} accepted, ${o.rejected.toLocaleString('en-GB')} rejected, ${o.unacknowledged.toLocaleString('en-GB')} without receipt), ` +
      `${plural(c.erasures, 'erasure confirmation')}, ${plural(c.receipts, 'receipt')}`,
    `  ${plural(c.signatures, 'signature')}, ${plural(c.nodes, 'node')} (${plural(c.nodeDocuments, 'document')}), ${plural(c.agreements, 'agreement')}, ` +
      `${plural(c.consents, 'consent')} (${plural(c.withdrawals, 'withdrawal')})`,
    `  ${plural(c.leaves, 'log entry', 'log entries')}, ${plural(c.checkpoints, 'checkpoint')}, ${plural(c.peerCheckpoints, 'peer checkpoint')}, ` +
      `${plural(c.inclusionProofs, 'inclusion proof')}, ${plural(c.consistencyProofs, 'consistency proof')}`,
  ];
  for (const f of report.failures) lines.push(`✗ ${f.object} — ${f.check}: ${f.code} (${f.message})`);
  return `${lines.join('\n')}\n`;
}
