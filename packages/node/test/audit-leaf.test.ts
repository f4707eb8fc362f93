/**
 * One definition of the audit leaf (spec/audit.md §3.1): the node's stores hash every entry with
 * the protocol's function, so an auditor recomputing a leaf from an exported entry gets the hash
 * the node stored and signed into its checkpoints — in SQLite and in PostgreSQL alike.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as protocol from '@passerelle/protocol';
import { auditLeafHashBytes, b64u, isAuditLeaf, messageSentEvent } from '@passerelle/protocol';
import * as nodeLeaf from '../src/store/audit-leaf.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { boundedAuditEvents, MAX_AUDIT_LIST } from '../src/audit/bounded-event.js';

const AT = '2026-05-01T10:00:00Z';

describe('audit leaf hashing', () => {
  it('is the protocol definition itself, re-exported for the stores', () => {
    expect(nodeLeaf.auditLeafHash).toBe(protocol.auditLeafHash);
    expect(nodeLeaf.auditLeafData).toBe(protocol.auditLeafData);
    expect(nodeLeaf.canonicalJson).toBe(protocol.canonicalJson);
  });

  it('stores for every kind of entry the hash an auditor recomputes from the exported entry', async () => {
    const store = await openSqliteStore(':memory:');
    try {
      const events = [
        messageSentEvent({ messageId: '0196a000-0000-7000-8000-000000000001', peer: 'https://partenaire.example', digest: 'x'.repeat(43), type: 'referral' }, AT),
        { kind: 'consent.withdrawn', fields: { consentId: 'c-1', purposes: null, withdrawnAt: AT }, at: '2026-05-01T10:00:00.123Z' },
        { kind: 'personal-data.read', fields: { reader: 'token:t-1', categories: ['health', 'identity'], n: 2.5, ok: false }, at: AT },
        { kind: 'unicode', fields: { label: 'Référence – état ✓ \u2028' }, at: AT },
      ];
      for (const e of events) await store.appendAudit(e);
      for (const record of await store.readAudit(0, events.length)) {
        const exported = { index: record.index, kind: record.kind, fields: record.fields, at: record.at };
        expect(isAuditLeaf(exported)).toBe(true);
        expect(b64u(auditLeafHashBytes(exported))).toBe(record.leafHash);
        const data = `{"at":${JSON.stringify(record.at)},"fields":${protocol.canonicalJson(record.fields)},"index":${record.index},"kind":${JSON.stringify(record.kind)}}`;
        expect(record.leafHash).toBe(createHash('sha256').update(Buffer.concat([Buffer.from([0]), Buffer.from(data, 'utf8')])).digest('base64url'));
      }
    } finally {
      await store.close();
    }
  });

  it('splits an event whose lists exceed the verifier bound into entries an auditor accepts', () => {
    const ids = Array.from({ length: 150 }, (_, i) => `c-${i}`);
    const parts = boundedAuditEvents({ kind: 'personal-data.read', fields: { consents: ids, reader: 'token:t-1' }, at: AT });
    expect(parts.map((p) => (p.fields.consents as string[]).length)).toEqual([MAX_AUDIT_LIST, MAX_AUDIT_LIST, 150 - 2 * MAX_AUDIT_LIST]);
    expect(parts.map((p) => [p.fields.part, p.fields.parts])).toEqual([[1, 3], [2, 3], [3, 3]]);
    expect(parts.flatMap((p) => p.fields.consents as string[])).toEqual(ids);
    for (const [index, p] of parts.entries()) expect(isAuditLeaf({ index, ...p })).toBe(true);
    const small = { kind: 'token.created', fields: { tokenId: 't-1' }, at: AT };
    expect(boundedAuditEvents(small)).toEqual([small]);
  });
});
