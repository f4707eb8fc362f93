/**
 * The node's audit log as a verifiable log (spec/node.md §9, spec/audit.md §3): the Merkle tree of
 * every leaf hash, kept in memory and caught up from the store (every store method appends its own
 * events), signed checkpoints at a regular interval, on demand and at shutdown, and the RFC 9162
 * inclusion and consistency proofs an auditor or a peer asks for.
 *
 * The tree is rebuilt and checked against the last signed checkpoint at start (startup-check.ts);
 * afterwards every leaf read from the store is checked the same way before it joins the tree, so
 * a log changed under a running node stops it (AUDIT_LOG_INCONSISTENT) instead of being signed.
 */
import {
  b64u,
  buildCheckpoint,
  encodeProof,
  ProtocolError,
  signCheckpoint,
  verifyCheckpoint,
  type MerkleTree,
  type NodeKeyResolver,
} from '@passerelle/protocol';
import type { Logger } from 'pino';
import type { NodeIdentity } from '../identity/node-identity.js';
import type { CheckpointRecord, Store } from '../store/types.js';
import { NodeAuditEvents } from './audit-events.js';
import type { AuditGate } from './fail-closed-store.js';
import { appendVerifiedLeaves, AUDIT_PAGE_SIZE, verifyStoredLog } from './startup-check.js';

export interface AuditLogOptions {
  /** The store itself, not the fail-closed view: the log probes and resumes through it. */
  store: Store;
  identity: NodeIdentity;
  gate: AuditGate;
  logger: Logger;
  now: () => Date;
  /** Interval between checkpoints while the log grows (config `audit.checkpointIntervalMs`). */
  checkpointIntervalMs: number;
  /** While halted by a store failure, how often to try writing again. */
  probeIntervalMs?: number;
  pageSize?: number;
}

/** RFC 9162 §2.1.3 inclusion proof of one leaf, with the checkpoint of that tree size when one was signed. */
export interface InclusionProofView {
  leafIndex: number;
  treeSize: number;
  leafHash: string;
  path: string[];
  checkpoint?: string;
}

/** RFC 9162 §2.1.4 consistency proof between two sizes of the log. */
export interface ConsistencyProofView {
  from: number;
  to: number;
  path: string[];
}

/** What a running node offers about its log (RunningNode.audit). */
export interface NodeAudit {
  /** Leaves the in-memory tree holds (caught up with the store on every proof or checkpoint). */
  readonly size: number;
  /** The latest signed checkpoint (compact JWS), the one receipts carry. */
  latestCheckpoint(): string | undefined;
  /** Signs a checkpoint now if the log grew since the latest, and returns the latest. */
  checkpoint(): Promise<CheckpointRecord>;
  /** Stored checkpoints with size above `afterSize`, smallest first. */
  checkpoints(afterSize?: number, limit?: number): Promise<CheckpointRecord[]>;
  /** Proof that leaf `index` is in the tree of `treeSize` leaves (default: the latest checkpoint, signing one if it does not cover the leaf). */
  inclusionProof(index: number, treeSize?: number): Promise<InclusionProofView>;
  consistencyProof(from: number, to: number): Promise<ConsistencyProofView>;
  /** Set while the node refuses to write (fail closed, spec/node.md §9.3). */
  halted(): { code: string; reason: string; since: string } | undefined;
}

export class AuditLog implements NodeAudit {
  readonly #options: AuditLogOptions;
  readonly #tree: MerkleTree;
  readonly #resolveOwnKey: NodeKeyResolver;
  #latest: CheckpointRecord | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #probe: NodeJS.Timeout | undefined;
  #stopped = false;

  private constructor(options: AuditLogOptions, tree: MerkleTree, latest: CheckpointRecord | undefined, resolveOwnKey: NodeKeyResolver) {
    this.#options = options;
    this.#tree = tree;
    this.#latest = latest;
    this.#resolveOwnKey = resolveOwnKey;
    options.gate.onHalt((state) => {
      if (state.code === 'STORE_UNAVAILABLE') this.#startProbe();
      else this.#stopProbe();
    });
  }

  /** Verifies the stored log (throws AUDIT_LOG_INCONSISTENT when it was truncated or altered) and loads it. */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const { identity } = options;
    const resolveOwnKey: NodeKeyResolver = (nodeId, kid, at) => (nodeId === identity.id ? identity.ownSigningKey(kid, at) : undefined);
    const verified = await verifyStoredLog(options.store, identity.id, resolveOwnKey, options.pageSize ?? AUDIT_PAGE_SIZE);
    options.logger.info({ size: verified.tree.size, checkpoints: verified.checkpoints, checkpointSize: verified.latest?.size }, 'audit log verified');
    return new AuditLog(options, verified.tree, verified.latest, resolveOwnKey);
  }

  get size(): number {
    return this.#tree.size;
  }

  /** The tree over every leaf read so far (for proofs in bundles). Catch up with `sync` first. */
  get tree(): MerkleTree {
    return this.#tree;
  }

  latest(): CheckpointRecord | undefined {
    return this.#latest;
  }

  latestCheckpoint(): string | undefined {
    return this.#latest?.jws;
  }

  halted(): { code: string; reason: string; since: string } | undefined {
    return this.#options.gate.halted;
  }

  /** Signs checkpoints every interval while the log grows. */
  start(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setInterval(() => {
      this.checkpoint().catch((e: unknown) => this.#options.logger.error({ code: (e as ProtocolError).code ?? 'INTERNAL' }, 'audit checkpoint failed'));
    }, this.#options.checkpointIntervalMs);
    this.#timer.unref();
  }

  /** Stops the timers and signs a last checkpoint, so the log's final state leaves the node signed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopProbe();
    if (this.#options.gate.halted) return;
    await this.checkpoint().catch((e: unknown) => this.#options.logger.warn({ code: (e as ProtocolError).code ?? 'INTERNAL' }, 'no checkpoint at shutdown'));
  }

  /** Brings the tree up to the store's log, checking each new leaf. */
  sync(): Promise<number> {
    return this.#exclusive(() => this.#sync());
  }

  checkpoint(): Promise<CheckpointRecord> {
    return this.#exclusive(() => this.#checkpoint());
  }

  checkpoints(afterSize?: number, limit?: number): Promise<CheckpointRecord[]> {
    return this.#options.store.listCheckpoints(afterSize, limit);
  }

  async inclusionProof(index: number, treeSize?: number): Promise<InclusionProofView> {
    if (!Number.isSafeInteger(index) || index < 0) throw new ProtocolError('SCHEMA_INVALID', 'A leaf index is a non-negative integer');
    return this.#exclusive(async () => {
      await this.#sync();
      let size = treeSize;
      if (size === undefined) {
        if (index >= this.#tree.size) throw new ProtocolError('NOT_FOUND', `The log has ${this.#tree.size} entries`);
        size = (this.#latest && this.#latest.size > index ? this.#latest : await this.#checkpoint()).size;
      }
      if (!Number.isSafeInteger(size) || size <= index || size > this.#tree.size) {
        throw new ProtocolError('NOT_FOUND', `No tree of size ${size} holds entry ${index} (the log has ${this.#tree.size} entries)`);
      }
      const [found] = size === this.#latest?.size ? [this.#latest] : await this.#options.store.listCheckpoints(size - 1, 1);
      const jws = found?.size === size ? found.jws : undefined;
      return {
        leafIndex: index,
        treeSize: size,
        leafHash: b64u(this.#tree.leaf(index)),
        path: encodeProof(this.#tree.inclusionProof(index, size)),
        ...(jws ? { checkpoint: jws } : {}),
      };
    });
  }

  async consistencyProof(from: number, to: number): Promise<ConsistencyProofView> {
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
      throw new ProtocolError('SCHEMA_INVALID', 'Tree sizes must satisfy 0 <= from <= to');
    }
    return this.#exclusive(async () => {
      await this.#sync();
      if (to > this.#tree.size) throw new ProtocolError('NOT_FOUND', `The log has ${this.#tree.size} entries`);
      return { from, to, path: encodeProof(this.#tree.consistencyProof(from, to)) };
    });
  }

  // Internals

  /** One sync or signing at a time: the tree is appended to in index order only. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #sync(): Promise<number> {
    const { store } = this.#options;
    const size = await store.auditSize();
    try {
      if (size < this.#tree.size) {
        throw new ProtocolError('AUDIT_LOG_INCONSISTENT', `The audit log shrank from ${this.#tree.size} to ${size} entries while the node was running`, { size, held: this.#tree.size });
      }
      await appendVerifiedLeaves(store, this.#tree, size, this.#options.pageSize ?? AUDIT_PAGE_SIZE);
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'AUDIT_LOG_INCONSISTENT') this.#options.gate.halt('AUDIT_LOG_INCONSISTENT', e.message);
      throw e;
    }
    return this.#tree.size;
  }

  async #checkpoint(): Promise<CheckpointRecord> {
    const { store, identity } = this.#options;
    const halted = this.#options.gate.halted;
    if (halted) {
      if (this.#latest) return this.#latest;
      throw this.#options.gate.error();
    }
    await this.#sync();
    const size = this.#tree.size;
    if (this.#latest && this.#latest.size >= size) return this.#latest;
    // Never dated before the latest: a smaller checkpoint signed later would contradict it (spec/audit.md §3.3).
    const now = this.#options.now();
    const at = new Date(Math.max(now.getTime(), this.#latest ? Date.parse(this.#latest.at) : 0));
    const payload = buildCheckpoint({ origin: identity.id, size, root: this.#tree.root(size), at });
    const jws = await signCheckpoint(payload, identity.signingKey(at));
    const record: CheckpointRecord = { size, root: payload.root, at: payload.at, jws };
    let stored: boolean;
    try {
      stored = await store.putCheckpoint(record);
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'STORE_UNAVAILABLE') this.#options.gate.halt('STORE_UNAVAILABLE', e.message);
      throw e;
    }
    if (stored) {
      this.#latest = record;
      this.#options.logger.debug({ size, root: record.root }, 'audit checkpoint signed');
      return record;
    }
    // Another instance on the same database stored a later one first: ours never left this process.
    // Theirs must describe the same log, or the shared log was changed under one of us.
    const theirs = await store.latestCheckpoint();
    if (!theirs) throw new ProtocolError('INTERNAL', 'The store refused a checkpoint but holds none');
    await this.#adopt(theirs);
    return theirs;
  }

  async #adopt(cp: CheckpointRecord): Promise<void> {
    await this.#sync();
    const signed = await verifyCheckpoint(cp.jws, this.#resolveOwnKey, { origin: this.#options.identity.id });
    if (signed.size > this.#tree.size || b64u(this.#tree.root(signed.size)) !== signed.root) {
      const message = `A checkpoint stored by another instance (size ${signed.size}) does not describe this log`;
      this.#options.gate.halt('AUDIT_LOG_INCONSISTENT', message);
      throw new ProtocolError('AUDIT_LOG_INCONSISTENT', message, { checkpointSize: signed.size });
    }
    this.#latest = cp;
  }

  #startProbe(): void {
    if (this.#probe || this.#stopped) return;
    const interval = this.#options.probeIntervalMs ?? Math.min(1_000, this.#options.checkpointIntervalMs);
    this.#probe = setInterval(() => void this.#tryResume(), interval);
    this.#probe.unref();
  }

  #stopProbe(): void {
    if (this.#probe) clearInterval(this.#probe);
    this.#probe = undefined;
  }

  /** The probe is the record itself: appending `audit.resumed` proves that the log can be written again. */
  async #tryResume(): Promise<void> {
    const halted = this.#options.gate.halted;
    if (!halted || halted.code !== 'STORE_UNAVAILABLE') return this.#stopProbe();
    try {
      await this.#options.store.appendAudit({
        kind: NodeAuditEvents.AUDIT_RESUMED,
        fields: { haltedSince: halted.since, code: halted.code },
        at: this.#options.now().toISOString(),
      });
      await this.sync();
    } catch {
      return;
    }
    this.#stopProbe();
    this.#options.gate.resume();
  }
}
