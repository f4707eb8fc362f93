/**
 * Leaf hashing for the node's audit log. There is one definition, the protocol's
 * (`@passerelle/protocol`, audit/leaf.ts, spec/audit.md §3.1), shared by every store and by the
 * offline auditor; this module only re-exports it so that the stores keep importing from here.
 * A test (test/audit-leaf.test.ts) pins the two to the same bytes.
 */
export { auditLeafData, auditLeafHash, canonicalJson } from '@passerelle/protocol';
