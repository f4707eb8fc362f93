/** What the local API needs from the node: the same service methods the programmatic API exposes. */
import type { Agreement, AuditBundle, GeneralJws } from '@passerelle/protocol';
import type { NodeAudit } from '../../audit/audit-log.js';
import type { AuditExportOptions } from '../../audit/bundle-export.js';
import type { CreatedToken, TokenRole } from '../../auth/tokens.js';
import type { SendInput } from '../../outbox/send-message.js';
import type { AgreementSummary } from '../../services/agreements.js';
import type { ConsentView, RecordConsentInput, RecordedConsent, WithdrawalResult, WithdrawConsentInput } from '../../services/consents.js';
import type { InboxMessage, InboxSummary, OutboxSummary, ThreadMessage, ThreadSummary } from '../../services/messages-view.js';
import type { PeerView } from '../../services/peers.js';
import type { AuditRecord, OutboxState } from '../../store/types.js';

export interface LocalApiService {
  addPeer(nodeId: string, fingerprints: readonly string[], options?: { fetchDocument?: boolean }): Promise<PeerView>;
  listPeers(): PeerView[];
  refreshPeer(nodeId: string): Promise<PeerView>;
  signAgreement(payloadOrJws: Agreement | GeneralJws): Promise<GeneralJws>;
  registerAgreement(jws: GeneralJws): Promise<AgreementSummary>;
  listAgreements(): Promise<AgreementSummary[]>;
  terminateAgreement(agreementId: string, reason: string): Promise<string>;
  registerTermination(jws: string): Promise<void>;
  recordConsent(input: RecordConsentInput): Promise<RecordedConsent>;
  listConsents(reader: string): Promise<ConsentView[]>;
  readConsent(id: string, reader: string): Promise<ConsentView>;
  withdrawConsent(consentId: string, input?: WithdrawConsentInput): Promise<WithdrawalResult>;
  send(input: SendInput): Promise<OutboxSummary>;
  getOutbox(id: string): Promise<OutboxSummary | undefined>;
  listOutbox(filter?: { state?: OutboxState; peer?: string; consentId?: string; threadId?: string; limit?: number }): Promise<OutboxSummary[]>;
  listInbox(filter?: { sender?: string; threadId?: string; consentId?: string; limit?: number }): Promise<InboxSummary[]>;
  readInbox(id: string, reader?: string): Promise<InboxMessage>;
  listThreads(): Promise<ThreadSummary[]>;
  readThread(threadId: string, reader?: string): Promise<ThreadMessage[]>;
  createToken(role: TokenRole, label: string): Promise<CreatedToken>;
  revokeToken(id: string): Promise<void>;
  readAudit(from: number, to: number): Promise<AuditRecord[]>;
  exportAuditBundle(options?: AuditExportOptions): Promise<AuditBundle>;
  readonly audit: NodeAudit;
}
