/**
 * What a running node reports to the program that embeds it (and to tests): identifiers and
 * codes only, never personal data.
 */
import { EventEmitter } from 'node:events';

export interface NodeEventMap {
  'inbox.accepted': [{ messageId: string; sender: string; type: string; threadId: string; duplicate: boolean }];
  'inbox.rejected': [{ sender?: string; messageId?: string; code: string }];
  'outbox.queued': [{ messageId: string; peer: string; type: string }];
  'outbox.delivered': [{ messageId: string; peer: string; type: string }];
  'outbox.rejected': [{ messageId: string; peer: string; type: string; code: string }];
  'outbox.cancelled': [{ messageId: string; peer: string; type: string; code: string }];
  'outbox.failed': [{ messageId: string; peer: string; type: string; code: string }];
  'outbox.retry': [{ messageId: string; peer: string; code: string; attempt: number; delayMs: number }];
  'consent.withdrawn': [{ consentId: string; cancelled: string[]; notified: string[] }];
  'webhook.failed': [{ messageId: string; url: string }];
}

export type NodeEventName = keyof NodeEventMap;

export class NodeEvents extends EventEmitter<NodeEventMap> {}
