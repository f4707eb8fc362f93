/** What a started node offers the program that embeds it (the CLI, the demo, agency software, tests). */
import type { Logger } from 'pino';
import type { Agreement, AuditBundle, GeneralJws } from '@passerelle/protocol';
import type { NodeAudit } from './audit/audit-log.js';
import type { AuditExportOptions } from './audit/bundle-export.js';
import type { CreatedToken, TokenRole } from './auth/tokens.js';
import type { ResolvedConfig } from './config.js';
import type { NodeEvents } from './events.js';
import type { NodeIdentity } from './identity/node-identity.js';
import type { RotateKeysOptions, RotatedKeys } from './identity/rotate-keys.js';
import type { NodeMetrics } from './observability/node-metrics.js';
import type { SendInput } from './outbox/send-message.js';
import type { AgreementSummary } from './services/agreements.js';
import type { ConsentView, RecordConsentInput, RecordedConsent, WithdrawalResult, WithdrawConsentInput } from './services/consents.js';
import type { InboxMessage, InboxSummary, OutboxSummary, ThreadMessage, ThreadSummary } from './services/messages-view.js';
import type { PeerView } from './services/peers.js';
import type { AuditRecord, OutboxState, Store } from './store/types.js';
import type { AnswerImportResult, ExportResult, ImportResult } from './transfer/offline-transfer.js';

export interface RunningNode {
  readonly id: string;
  /** Where the server listens (http://host:port), or undefined when not listening. */
  readonly url: string | undefined;
  readonly config: ResolvedConfig;
  readonly identity: NodeIdentity;
  readonly store: Store;
  readonly events: NodeEvents;
  readonly logger: Logger;
  readonly metrics: NodeMetrics;
  close(): Promise<void>;

  fingerprints(): string[];
  nodeDocument(): GeneralJws;

  addPeer(nodeId: string, fingerprints: readonly string[], options?: { fetchDocument?: boolean }): Promise<PeerView>;
  listPeers(): PeerView[];
  refreshPeer(nodeId: string): Promise<PeerView>;

  signAgreement(payloadOrJws: Agreement | GeneralJws): Promise<GeneralJws>;
  registerAgreement(jws: GeneralJws): Promise<AgreementSummary>;
  listAgreements(): Promise<AgreementSummary[]>;
  terminateAgreement(agreementId: string, reason: string): Promise<string>;
  registerTermination(jws: string): Promise<void>;

  recordConsent(input: RecordConsentInput): Promise<RecordedConsent>;
  withdrawConsent(consentId: string, input?: WithdrawConsentInput): Promise<WithdrawalResult>;
  /** Consent records held (own and received); audited as a read of personal data. */
  listConsents(reader?: string): Promise<ConsentView[]>;
  readConsent(id: string, reader?: string): Promise<ConsentView>;

  send(input: SendInput): Promise<OutboxSummary>;
  getOutbox(id: string): Promise<OutboxSummary | undefined>;
  listOutbox(filter?: { state?: OutboxState; peer?: string; consentId?: string; threadId?: string; limit?: number }): Promise<OutboxSummary[]>;
  listInbox(filter?: { sender?: string; threadId?: string; consentId?: string; limit?: number }): Promise<InboxSummary[]>;
  /** Reads an inbound message with its disclosures (audited as read by `reader`). */
  readInbox(id: string, reader?: string): Promise<InboxMessage>;
  listThreads(): Promise<ThreadSummary[]>;
  readThread(threadId: string, reader?: string): Promise<ThreadMessage[]>;

  createToken(role: TokenRole, label: string): Promise<CreatedToken>;
  revokeToken(id: string): Promise<void>;
  readAudit(from: number, to: number): Promise<AuditRecord[]>;
  /** The verifiable log: checkpoints, inclusion and consistency proofs, fail-closed state (spec/node.md §9). */
  readonly audit: NodeAudit;
  /**
   * A signed audit bundle of this node for offline verification (spec/audit.md §4): scope `all` by
   * default; no personal data unless `withDisclosures` (a lawful full audit). Recorded in the log.
   */
  exportAuditBundle(options?: AuditExportOptions): Promise<AuditBundle>;

  exportForPeer(peer: string, file: string): Promise<ExportResult>;
  importTransfer(file: string, answerFile: string): Promise<ImportResult>;
  importTransferAnswer(file: string): Promise<AnswerImportResult>;

  /** Rotates this node's keys and publishes the next document version (peers follow the chain). */
  rotateKeys(options?: RotateKeysOptions): Promise<RotatedKeys>;

  /** Wakes the outbox worker now (instead of at its next poll). */
  flush(): void;
  /** Resolves when no message is queued any more (every one ended), or rejects after `timeoutMs`. */
  waitForOutbox(timeoutMs?: number): Promise<void>;
}
