/**
 * Audit entries within the bounds of spec/audit.md §3.1 (`isAuditLeaf` in the protocol): an entry
 * an auditor's verifier refuses could never be exported, and a whole-log bundle must export every
 * entry. Lists of identifiers are the one field that grows with the data (a local-API read of every
 * consent, an offline transfer of many messages), so an event whose lists are too long is recorded
 * as several entries, each with a slice of the list and `part`/`parts` naming its place.
 */
import { MAX_AUDIT_FIELDS } from '@passerelle/protocol';
import type { AuditEvent } from '../store/types.js';

/** The verifier's bound on a list field (leaf.ts, isAuditLeaf). */
export const MAX_AUDIT_LIST = 64;

export function boundedAuditEvents(event: AuditEvent): AuditEvent[] {
  const lists = Object.entries(event.fields).filter((entry): entry is [string, string[]] => Array.isArray(entry[1]) && entry[1].length > MAX_AUDIT_LIST);
  if (lists.length === 0 || Object.keys(event.fields).length + 2 > MAX_AUDIT_FIELDS) return [event];
  const parts = Math.max(...lists.map(([, list]) => Math.ceil(list.length / MAX_AUDIT_LIST)));
  return Array.from({ length: parts }, (_, part) => {
    const fields: AuditEvent['fields'] = { ...event.fields, part: part + 1, parts };
    for (const [name, list] of lists) fields[name] = list.slice(part * MAX_AUDIT_LIST, (part + 1) * MAX_AUDIT_LIST);
    return { ...event, fields };
  });
}
