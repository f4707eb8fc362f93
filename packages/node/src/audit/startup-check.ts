/**
 * The start-up check of the node's own audit log (spec/node.md §9.2): every leaf hash is recomputed
 * from the stored event fields (spec/audit.md §3.1), the Merkle tree is rebuilt, and the stored
 * checkpoints — above all the last one, which this node signed — must still describe that tree.
 * A log that is shorter than a checkpoint (truncated), or whose entries no longer produce the
 * signed root (altered), is refused with AUDIT_LOG_INCONSISTENT: a node that went on from there
 * would sign new checkpoints contradicting the ones its peers already hold in their receipts.
 */
import { b64u, fromB64u, MerkleTree, ProtocolError, verifyCheckpoint, auditLeafHash, type NodeKeyResolver } from '@passerelle/protocol';
import type { AuditRecord, CheckpointRecord, Store } from '../store/types.js';

/** Leaves read per query: bounded memory whatever the size of the log. */
export const AUDIT_PAGE_SIZE = 5_000;

function inconsistent(message: string, details: Record<string, unknown>): ProtocolError {
  return new ProtocolError('AUDIT_LOG_INCONSISTENT', message, details);
}

/**
 * Checks stored records `[from, to)` and appends their leaf hashes to `tree` (whose size must be
 * `from`): indices contiguous, each stored leaf hash equal to the one recomputed from its fields.
 */
export async function appendVerifiedLeaves(store: Store, tree: MerkleTree, to: number, pageSize = AUDIT_PAGE_SIZE): Promise<void> {
  for (let from = tree.size; from < to; from = tree.size) {
    const end = Math.min(to, from + pageSize);
    const records: AuditRecord[] = await store.readAudit(from, end);
    for (const record of records) {
      if (record.index !== tree.size) {
        throw inconsistent(`Audit log entry ${tree.size} is missing`, { index: tree.size });
      }
      const recomputed = auditLeafHash(record);
      if (recomputed !== record.leafHash) {
        throw inconsistent(`Audit log entry ${record.index} does not match its recorded leaf hash: its fields were changed`, { index: record.index });
      }
      tree.append(fromB64u(recomputed));
    }
    if (tree.size < end) throw inconsistent(`Audit log entry ${tree.size} is missing`, { index: tree.size });
  }
}

/** Whether a stored checkpoint still describes `tree`: same origin, size within it, same root. */
function checkAgainstTree(cp: CheckpointRecord, tree: MerkleTree): void {
  if (cp.size > tree.size) {
    throw inconsistent(
      `The audit log holds ${tree.size} entries, fewer than the ${cp.size} of the checkpoint signed at ${cp.at}: it was truncated`,
      { size: tree.size, checkpointSize: cp.size, checkpointAt: cp.at },
    );
  }
  if (b64u(tree.root(cp.size)) !== cp.root) {
    throw inconsistent(
      `The first ${cp.size} audit log entries no longer produce the root of the checkpoint signed at ${cp.at}: the log was altered`,
      { checkpointSize: cp.size, checkpointAt: cp.at },
    );
  }
}

export interface VerifiedLog {
  tree: MerkleTree;
  latest: CheckpointRecord | undefined;
  checkpoints: number;
}

/**
 * Rebuilds the log's tree from the store and checks it against every stored checkpoint (roots; the
 * last one's signature too, with this node's key valid when it signed). Throws
 * AUDIT_LOG_INCONSISTENT on any mismatch, with the reason in the message.
 */
export async function verifyStoredLog(store: Store, origin: string, resolveKey: NodeKeyResolver, pageSize = AUDIT_PAGE_SIZE): Promise<VerifiedLog> {
  const tree = new MerkleTree();
  await appendVerifiedLeaves(store, tree, await store.auditSize(), pageSize);

  let latest: CheckpointRecord | undefined;
  let count = 0;
  for (let page = await store.listCheckpoints(-1, pageSize); page.length > 0; page = await store.listCheckpoints(latest!.size, pageSize)) {
    for (const cp of page) {
      if (latest && Date.parse(cp.at) < Date.parse(latest.at)) {
        throw inconsistent(`Checkpoint of size ${cp.size} is dated before the smaller one of size ${latest.size}`, { checkpointSize: cp.size });
      }
      checkAgainstTree(cp, tree);
      latest = cp;
      count++;
    }
  }
  if (latest) {
    // The stored row is only a copy: the signed payload is what peers hold and what must match.
    let signed;
    try {
      signed = await verifyCheckpoint(latest.jws, resolveKey, { origin });
    } catch (e) {
      const reason = e instanceof ProtocolError ? e.code : 'INTERNAL';
      throw new ProtocolError('AUDIT_LOG_INCONSISTENT', `The last stored checkpoint (size ${latest.size}) does not verify with this node's key`, { reason, checkpointSize: latest.size }, { cause: e });
    }
    if (signed.size !== latest.size || signed.root !== latest.root || signed.at !== latest.at) {
      throw inconsistent(`The last stored checkpoint does not say what its signature covers`, { checkpointSize: latest.size });
    }
  }
  return { tree, latest, checkpoints: count };
}
