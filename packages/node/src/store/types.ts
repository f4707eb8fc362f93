/**
 * The node's storage seam (spec/node.md §Store). One interface, two implementations (SQLite, the
 * embedded default; PostgreSQL for several instances on one database), one conformance suite.
 *
 * Every method that changes state is atomic. Nothing is acknowledged to a peer or to the local API
 * before the method that records it has resolved (i.e. committed durably). A store that cannot be
 * written (disk full, read-only, locked beyond its timeout, closed) rejects with STORE_UNAVAILABLE
 * and has changed nothing. Timestamps are RFC 3339 strings, returned exactly as given.
 */

export type OutboxState = 'queued' | 'delivered' | 'rejected' | 'cancelled' | 'failed';
export const TERMINAL_STATES: readonly OutboxState[] = ['delivered', 'rejected', 'cancelled', 'failed'];

export interface PeerRecord {
  nodeId: string;
  /** Pinned signing-key fingerprints (RFC 7638 thumbprints), set by an administrator. */
  fingerprints: string[];
  /** Latest verified node document (JWS General JSON, serialised), if fetched. */
  document?: string;
  documentVersion?: number;
  addedAt: string;
  updatedAt: string;
}

export interface AgreementRecord {
  id: string;
  version: number;
  /** The co-signed agreement (JWS General JSON, serialised). */
  jws: string;
  /** Signed terminations (compact JWS). */
  terminations: string[];
  registeredAt: string;
}

export interface ConsentRecordRow {
  id: string;
  controller: string;
  subject: string;
  /** The controller-signed consent record (compact JWS). */
  jws: string;
  expiresAt: string;
  recordedAt: string;
  /** Set when withdrawn wholly. */
  withdrawnAt?: string;
  /** Purposes withdrawn so far (partial withdrawals). */
  withdrawnPurposes: string[];
}

export interface OutboxEntry {
  id: string;
  peer: string;
  type: string;
  threadId: string;
  consentId?: string;
  /** Lower delivers first; consent withdrawals use 0, everything else 10. */
  priority: number;
  /** The sealed message (compact JWE) exactly as it will be sent. */
  jwe: string;
  /** base64url SHA-256 of `jwe`. */
  digest: string;
  /** Issuer-signed JWT (no disclosures) for audit. */
  jwt: string;
  state: OutboxState;
  attempts: number;
  nextAttemptAt: string;
  expiresAt: string;
  createdAt: string;
  updatedAt: string;
  lastError?: string;
  /** Peer's signed receipt (compact JWS) when delivered or rejected with a receipt. */
  receipt?: string;
  /** Peer's problem+json when rejected. */
  problem?: string;
  deliveredAt?: string;
}

export type NewOutboxEntry = Omit<OutboxEntry, 'state' | 'attempts' | 'createdAt' | 'updatedAt' | 'nextAttemptAt'> & {
  nextAttemptAt?: string;
};

export interface InboxEntry {
  id: string;
  sender: string;
  type: string;
  threadId: string;
  consentId?: string;
  /** base64url SHA-256 of the exact JWE bytes received. */
  digest: string;
  /**
   * The JWE exactly as received. Absent once erased: it is encrypted to this node, which holds the
   * key, so it is personal data like `sdJwt`.
   */
  jwe?: string;
  /** The decrypted SD-JWT (issuer-signed JWT and disclosures) — personal data; erased on withdrawal. */
  sdJwt?: string;
  /** Issuer-signed JWT alone: kept after erasure as evidence. */
  jwt: string;
  categories: string[];
  receipt: string;
  receivedAt: string;
  erasedAt?: string;
}

export type AcceptResult =
  | { status: 'stored'; entry: InboxEntry }
  | { status: 'duplicate'; entry: InboxEntry }
  | { status: 'conflict'; entry: InboxEntry };

export interface AuditEvent {
  kind: string;
  /** Identifiers and digests only, never personal data. */
  fields: Record<string, string | number | boolean | string[] | null>;
  at: string;
}

export interface AuditRecord extends AuditEvent {
  index: number;
  /** RFC 9162 leaf hash, base64url. */
  leafHash: string;
}

/** A signed checkpoint of this node's own audit log (spec/audit.md §3.3). */
export interface CheckpointRecord {
  size: number;
  /** RFC 9162 root of the first `size` leaves, base64url. */
  root: string;
  /** RFC 3339, as signed. */
  at: string;
  /** The checkpoint as signed (compact JWS, typ passerelle-checkpoint+jwt). */
  jws: string;
}

/** One version of a node document (this node's or a peer's), kept so audit bundles carry key histories. */
export interface NodeDocumentRecord {
  nodeId: string;
  version: number;
  /** The node document (JWS General JSON, serialised) exactly as verified. */
  jws: string;
}

export interface TokenRecord {
  id: string;
  /** SHA-256 of the secret; the secret itself is shown once, never stored. */
  hash: string;
  role: 'caseworker' | 'administrator' | 'auditor';
  label: string;
  createdAt: string;
  revokedAt?: string;
}

export interface ClaimOptions {
  now: string;
  limit: number;
  /** Identifies this worker/instance; claims are leases that expire. */
  owner: string;
  leaseMs: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Applies pending versioned migrations. */
  migrate(): Promise<void>;
  /** Waits for writes in progress, then closes; idempotent. Later calls reject with STORE_UNAVAILABLE. */
  close(): Promise<void>;

  // Trust store
  /** Inserts or replaces the peer (version policy for node documents is the caller's). Lists sort by nodeId. */
  putPeer(peer: PeerRecord): Promise<void>;
  getPeer(nodeId: string): Promise<PeerRecord | undefined>;
  listPeers(): Promise<PeerRecord[]>;

  // Agreements and consents
  /**
   * Inserts or replaces an agreement by id. Terminations are only ever added: those in `record`
   * join the ones already stored, and a replacement never drops any. Lists sort by id.
   */
  putAgreement(record: AgreementRecord): Promise<void>;
  getAgreement(id: string): Promise<AgreementRecord | undefined>;
  listAgreements(): Promise<AgreementRecord[]>;
  /** Appends a termination (idempotent for the same JWS). NOT_FOUND for an unknown agreement. */
  addTermination(agreementId: string, termination: string): Promise<void>;
  /**
   * Inserts or replaces a consent record by id. A withdrawal already recorded is never undone by a
   * later put: `withdrawnAt` keeps the value already stored and `withdrawnPurposes` the union.
   * Lists sort by recordedAt, then id.
   */
  putConsent(record: ConsentRecordRow): Promise<void>;
  getConsent(id: string): Promise<ConsentRecordRow | undefined>;
  listConsents(): Promise<ConsentRecordRow[]>;
  /**
   * Records a withdrawal (`purposes` undefined: whole, sets `withdrawnAt` unless already set;
   * otherwise adds the purposes to `withdrawnPurposes`) and, in the same transaction with `audit`,
   * cancels every queued outbox entry under the consent, leased or not. A partial withdrawal also
   * cancels all of them: the store does not know each message's purpose, and a message that is
   * still wanted can be rebuilt under the remaining purposes, whereas one sent in error cannot be
   * recalled. Consent-withdrawal and erasure-confirmation messages are never cancelled (they exist
   * because of the withdrawal). Returns the cancelled entry ids. NOT_FOUND (nothing changed) for an
   * unknown consent.
   */
  withdrawConsent(id: string, purposes: string[] | undefined, at: string, audit: AuditEvent): Promise<string[]>;

  // Outbox
  /**
   * Commits a sealed message (and its audit event) before anything is sent. `createdAt` and
   * `updatedAt` are `audit.at`; `nextAttemptAt` defaults to it. Refuses with CONSENT_WITHDRAWN, in
   * the same transaction, a message under a wholly withdrawn consent (unless it is a
   * consent-withdrawal or erasure-confirmation), which closes the race with withdrawConsent.
   */
  enqueue(entry: NewOutboxEntry, audit: AuditEvent): Promise<OutboxEntry>;
  /**
   * Leases to `owner`, until `now + leaseMs`, up to `limit` queued entries due at `now` (priority,
   * then nextAttemptAt). Entries under an unexpired lease are skipped; an expired one is re-claimed.
   * Times are compared as instants, not as strings.
   */
  claimDue(options: ClaimOptions): Promise<OutboxEntry[]>;
  /**
   * Records the outcome of a delivery attempt and clears the lease. Returns false, changing
   * nothing, if the entry is unknown, already terminal, or leased to another owner (lease lost).
   * Every outcome but 'cancelled' counts one attempt; 'queued' schedules a retry at `nextAttemptAt`.
   */
  complete(
    id: string,
    owner: string,
    outcome:
      | { state: 'delivered'; receipt: string; at: string }
      | { state: 'rejected'; problem: string; receipt?: string; at: string }
      | { state: 'failed'; error: string; at: string }
      | { state: 'cancelled'; error: string; at: string }
      | { state: 'queued'; error: string; nextAttemptAt: string; at: string },
    audit?: AuditEvent,
  ): Promise<boolean>;
  getOutbox(id: string): Promise<OutboxEntry | undefined>;
  /** Sorted by createdAt, then id. */
  listOutbox(filter?: { state?: OutboxState; peer?: string; consentId?: string; threadId?: string; limit?: number }): Promise<OutboxEntry[]>;
  countOutboxByState(): Promise<Record<OutboxState, number>>;
  /**
   * The `nextAttemptAt` of the earliest-due queued entry to `peer` with a priority below
   * `priorityBelow` (leased or not), or undefined when there is none. How the worker holds a peer's
   * traffic back behind its rights messages without reading the peer's whole outbox.
   */
  nextQueuedBelow(peer: string, priorityBelow: number): Promise<string | undefined>;

  // Inbox (exactly-once acceptance)
  /**
   * Stores an inbound message once. `makeReceipt` is called inside the transaction with the audit
   * index of the acceptance event, so the receipt and the message are committed together.
   * A duplicate (same id, same digest) returns the stored entry and its original receipt;
   * the same id with another digest returns `conflict` and changes nothing. If `makeReceipt`
   * throws, the transaction (audit event included) is rolled back and its error propagates as is.
   * Readers never see the message or its audit event before the commit.
   */
  acceptInbound(
    entry: Omit<InboxEntry, 'receipt'>,
    audit: AuditEvent,
    makeReceipt: (auditIndex: number) => Promise<string>,
  ): Promise<AcceptResult>;
  getInbox(id: string): Promise<InboxEntry | undefined>;
  /** Sorted by receivedAt, then id. */
  listInbox(filter?: { sender?: string; threadId?: string; consentId?: string; limit?: number }): Promise<InboxEntry[]>;
  /**
   * Erases personal data (sdJwt, jwe) of inbound messages under a consent, keeping jwt, digest and
   * receipt as evidence, and appends `audit` in the same transaction (also when nothing was left to
   * erase). Returns the ids erased by this call (already-erased entries are not repeated).
   */
  eraseInboundByConsent(consentId: string, at: string, audit: AuditEvent): Promise<string[]>;

  // Audit log (append-only)
  /** Appends at the next index (0, 1, 2, … with no gaps) with its leaf hash (audit-leaf.ts). */
  appendAudit(event: AuditEvent): Promise<AuditRecord>;
  /** Records with `from <= index < to` (half-open, like Array.prototype.slice), in index order. */
  readAudit(from: number, to: number): Promise<AuditRecord[]>;
  auditSize(): Promise<number>;
  /**
   * Appends a signed checkpoint if it extends the latest stored one: a larger size and an `at` not
   * earlier (the first may have any size). Returns false, storing nothing, otherwise, so that the
   * checkpoints of a log shared by several instances never contradict each other (spec/audit.md
   * §3.3). Checkpoints are append-only.
   */
  putCheckpoint(checkpoint: CheckpointRecord): Promise<boolean>;
  /** Checkpoints with `size > afterSize` (default: all), smallest first, at most `limit` (default 1000). */
  listCheckpoints(afterSize?: number, limit?: number): Promise<CheckpointRecord[]>;
  latestCheckpoint(): Promise<CheckpointRecord | undefined>;
  /** Keeps one version of a node document; idempotent for a version already kept. */
  putNodeDocument(record: NodeDocumentRecord): Promise<void>;
  /** Every version kept of `nodeId`'s document, oldest first. */
  listNodeDocuments(nodeId: string): Promise<NodeDocumentRecord[]>;

  // Local API tokens
  /** Inserts or replaces by id (revocation is a put with `revokedAt`). Lists sort by createdAt, then id. */
  putToken(token: TokenRecord): Promise<void>;
  /** Also returns revoked tokens: the caller checks `revokedAt`. */
  findTokenByHash(hash: string): Promise<TokenRecord | undefined>;
  listTokens(): Promise<TokenRecord[]>;

  // Replay protection beyond the inbox (e.g. HTTP signature nonces), with expiry
  /**
   * Returns true if the key was new or its earlier record had expired (and records it until
   * `expiresAt`); false if it is still remembered. Expiry is judged against the wall clock.
   */
  remember(key: string, expiresAt: string): Promise<boolean>;
}
