/**
 * Audit-log event kinds the reference node records beyond those an auditor relies on (which the
 * protocol defines in audit/events.ts: message.sent, message.delivered, message.rejected,
 * message.received, consent.withdrawn). spec/node.md §9 lists every kind. Fields are identifiers,
 * digests, codes and node ids only — never personal data.
 */
export const NodeAuditEvents = {
  /** This node signed an erasure confirmation answering a withdrawal (DESIGN flow 5). */
  ERASURE_CONFIRMED: 'erasure.confirmed',
  /** This node rotated its keys and published the next document version. */
  KEY_ROTATED: 'key.rotated',
  /** An audit bundle was exported (who asked, which scope, whether it carries personal data). */
  AUDIT_EXPORTED: 'audit.exported',
  /** The log could be written again after a write failure had stopped the node (spec/node.md §9.3). */
  AUDIT_RESUMED: 'audit.resumed',
} as const;
export type NodeAuditEventKind = (typeof NodeAuditEvents)[keyof typeof NodeAuditEvents];
