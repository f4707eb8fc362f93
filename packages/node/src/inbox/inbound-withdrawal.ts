/**
 * What a recipient does with a consent withdrawal (DESIGN flow 5, spec/node.md §2.4): record it
 * against the controller's consent, erase what it holds under that consent when erasure is
 * requested, and answer with a signed erasure confirmation. Every step is idempotent, so a
 * redelivered withdrawal repairs a crash between them.
 */
import {
  MessageTypes,
  ProtocolError,
  toTimestamp,
  type DataCategory,
  type ConsentWithdrawalBody,
  type Opened,
} from '@passerelle/protocol';
import type { z } from 'zod';
import type { Logger } from 'pino';
import type { SendInput } from '../outbox/send-message.js';
import type { Store } from '../store/types.js';
import { NodeAuditEvents } from '../audit/audit-events.js';

export interface WithdrawalEffects {
  store: Store;
  logger: Logger;
  now: () => Date;
  send: (input: SendInput) => Promise<unknown>;
}

type WithdrawalBody = z.infer<typeof ConsentWithdrawalBody>;

export async function applyWithdrawal(effects: WithdrawalEffects, opened: Opened, now: Date): Promise<void> {
  const body = opened.body as WithdrawalBody;
  const row = await effects.store.getConsent(body.consentId);
  // Nothing was ever received under it: nothing to record or erase, the confirmation says so.
  if (!row) return;
  if (row.controller !== opened.header.from) {
    throw new ProtocolError('CONSENT_SIGNER_INVALID', 'Only the controller of a consent can withdraw it');
  }
  const at = Date.parse(body.withdrawnAt) > now.getTime() ? toTimestamp(now) : body.withdrawnAt;
  await effects.store.withdrawConsent(body.consentId, body.purposes, at, {
    kind: 'consent.withdrawal-received',
    fields: { consentId: body.consentId, messageId: opened.header.id, sender: opened.header.from, purposes: body.purposes ?? null },
    at: now.toISOString(),
  });
  if (body.erasureRequested) {
    const erased = await effects.store.eraseInboundByConsent(body.consentId, now.toISOString(), {
      kind: 'inbox.erased',
      fields: { consentId: body.consentId, messageId: opened.header.id },
      at: now.toISOString(),
    });
    effects.logger.info({ consentId: body.consentId, erased: erased.length }, 'inbound data erased after withdrawal');
  }
}

export async function ensureErasureConfirmation(effects: WithdrawalEffects, opened: Opened): Promise<void> {
  const body = opened.body as WithdrawalBody;
  if (!body.erasureRequested) return;
  const { header } = opened;
  const queued = await effects.store.listOutbox({ threadId: header.threadId, peer: header.from });
  if (queued.some((e) => e.type === MessageTypes.ERASURE_CONFIRMATION)) return;
  const row = await effects.store.getConsent(body.consentId);
  const held = row ? await effects.store.listInbox({ consentId: body.consentId, sender: header.from }) : [];
  const now = effects.now();
  const confirmation = await effects.send({
    type: MessageTypes.ERASURE_CONFIRMATION,
    to: header.from,
    agreementId: header.agreementId,
    threadId: header.threadId,
    ...(row ? { consentId: body.consentId } : {}),
    body: {
      consentId: body.consentId,
      inReplyTo: header.id,
      erasedAt: toTimestamp(now),
      erased: held
        .filter((e) => e.erasedAt !== undefined && e.type !== MessageTypes.CONSENT_WITHDRAWAL)
        .map((e) => ({ messageId: e.id, categories: e.categories as DataCategory[] })),
      retained: [],
    },
  });
  // Identifiers only: which confirmation answers which withdrawal, and which messages it lists.
  await effects.store.appendAudit({
    kind: NodeAuditEvents.ERASURE_CONFIRMED,
    fields: {
      consentId: body.consentId,
      messageId: (confirmation as { id: string }).id,
      inReplyTo: header.id,
      peer: header.from,
      erased: held.filter((e) => e.erasedAt !== undefined && e.type !== MessageTypes.CONSENT_WITHDRAWAL).map((e) => e.id),
    },
    at: now.toISOString(),
  });
}
