/**
 * Signed webhooks to the agency's own software (spec/node.md §5.4): on every accepted inbound
 * message, a small JSON notification with identifiers only, signed with HMAC-SHA256 over
 * `<timestamp>.<body>`, retried with backoff.
 *
 * Durability without a table of its own: acceptance and successful notification are both audit
 * events (`inbox.accepted`, `webhook.notified`), so on start the node re-sends every notification
 * in the recent audit tail that has no `webhook.notified` or `webhook.abandoned` for that endpoint.
 * A notification can therefore arrive twice (a crash after the POST, before the audit append):
 * receivers de-duplicate on `passerelle-webhook-id`.
 */
import { createHmac } from 'node:crypto';
import { Agent, request } from 'undici';
import { AuditEvents } from '@passerelle/protocol';
import type { Logger } from 'pino';
import type { WebhookConfig } from '../config.js';
import type { NodeEvents } from '../events.js';
import type { NodeMetrics } from '../observability/node-metrics.js';
import { backoffDelay } from '../outbox/backoff.js';
import type { InboxEntry, Store } from '../store/types.js';

export const WEBHOOK_SIGNATURE_HEADER = 'passerelle-webhook-signature';
export const WEBHOOK_ID_HEADER = 'passerelle-webhook-id';
export const WEBHOOK_TIMESTAMP_HEADER = 'passerelle-webhook-timestamp';
/** How far back in the audit log recovery looks. */
const RECOVERY_WINDOW = 5000;

export interface WebhookNotification {
  event: 'message.received';
  messageId: string;
  sender: string;
  type: string;
  threadId: string;
  receivedAt: string;
}

export interface WebhookDeps {
  store: Store;
  logger: Logger;
  metrics: NodeMetrics;
  events: NodeEvents;
  webhooks: readonly WebhookConfig[];
  now: () => Date;
  backoffBaseMs: number;
  backoffCapMs: number;
  timeoutMs: number;
  maxAttempts?: number;
}

/** `v1=<base64url HMAC-SHA256(secret, "<timestamp>.<body>")>`; receivers recompute it over the raw body. */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('base64url')}`;
}

export class WebhookNotifier {
  readonly #deps: WebhookDeps;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #active = new Set<Promise<void>>();
  readonly #agent: Agent;
  #stopped = false;

  constructor(deps: WebhookDeps) {
    this.#deps = deps;
    this.#agent = new Agent({ connect: { timeout: deps.timeoutMs }, headersTimeout: deps.timeoutMs, bodyTimeout: deps.timeoutMs });
  }

  notify(entry: InboxEntry): void {
    const n: WebhookNotification = {
      event: 'message.received',
      messageId: entry.id,
      sender: entry.sender,
      type: entry.type,
      threadId: entry.threadId,
      receivedAt: entry.receivedAt,
    };
    this.#deps.webhooks.forEach((_hook, index) => this.#schedule(index, n, 1, 0));
  }

  /** Re-sends notifications that the audit log shows as never completed. */
  async recover(): Promise<void> {
    if (this.#deps.webhooks.length === 0) return;
    const size = await this.#deps.store.auditSize();
    const events = await this.#deps.store.readAudit(Math.max(0, size - RECOVERY_WINDOW), size);
    const done = new Set<string>();
    for (const e of events) {
      if (e.kind === 'webhook.notified' || e.kind === 'webhook.abandoned') done.add(`${String(e.fields.webhook)}:${String(e.fields.messageId)}`);
    }
    for (const e of events) {
      if (e.kind !== AuditEvents.MESSAGE_RECEIVED) continue;
      const f = e.fields;
      const n: WebhookNotification = {
        event: 'message.received',
        messageId: String(f.messageId),
        sender: String(f.peer),
        type: String(f.type),
        threadId: String(f.threadId),
        receivedAt: e.at,
      };
      this.#deps.webhooks.forEach((_hook, index) => {
        if (!done.has(`${index}:${n.messageId}`)) this.#schedule(index, n, 1, 0);
      });
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#active]);
    await this.#agent.close().catch(() => undefined);
  }

  #schedule(index: number, n: WebhookNotification, attempt: number, delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const task = this.#attempt(index, n, attempt).finally(() => this.#active.delete(task));
      this.#active.add(task);
    }, delayMs);
    this.#timers.add(timer);
  }

  async #attempt(index: number, n: WebhookNotification, attempt: number): Promise<void> {
    const hook = this.#deps.webhooks[index]!;
    const body = JSON.stringify(n);
    const timestamp = Math.floor(this.#deps.now().getTime() / 1000);
    let ok = false;
    try {
      const res = await request(hook.url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: {
          'content-type': 'application/json',
          [WEBHOOK_ID_HEADER]: n.messageId,
          [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
          [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(hook.secret, timestamp, body),
        },
        body,
        signal: AbortSignal.timeout(this.#deps.timeoutMs),
      });
      await res.body.dump().catch(() => undefined);
      ok = res.statusCode >= 200 && res.statusCode < 300;
    } catch {
      ok = false;
    }
    const at = this.#deps.now().toISOString();
    if (ok) {
      this.#deps.metrics.webhooks.inc({ outcome: 'delivered' });
      await this.#deps.store.appendAudit({ kind: 'webhook.notified', fields: { webhook: index, messageId: n.messageId }, at }).catch(() => undefined);
      return;
    }
    const max = this.#deps.maxAttempts ?? 12;
    if (attempt >= max) {
      this.#deps.metrics.webhooks.inc({ outcome: 'abandoned' });
      this.#deps.logger.warn({ webhook: index, messageId: n.messageId, attempts: attempt }, 'webhook notification abandoned');
      this.#deps.events.emit('webhook.failed', { messageId: n.messageId, url: new URL(hook.url).origin });
      await this.#deps.store.appendAudit({ kind: 'webhook.abandoned', fields: { webhook: index, messageId: n.messageId }, at }).catch(() => undefined);
      return;
    }
    this.#deps.metrics.webhooks.inc({ outcome: 'retry' });
    this.#schedule(index, n, attempt + 1, backoffDelay({ baseMs: this.#deps.backoffBaseMs, capMs: this.#deps.backoffCapMs }, attempt));
  }
}
