import { z } from 'zod';
import { DataCategory, MessageId, Timestamp, Uuid } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

/** What the recipient erased after a withdrawal, and what it keeps under a named legal obligation. */
export const ErasureConfirmationBody = z
  .object({
    consentId: Uuid,
    inReplyTo: MessageId,
    erasedAt: Timestamp,
    erased: z.array(z.object({ messageId: MessageId, categories: z.array(DataCategory) }).strict()).max(10_000),
    retained: z
      .array(
        z
          .object({
            messageId: MessageId,
            categories: z.array(DataCategory).min(1),
            legalObligation: z.string().min(1).max(500),
            until: Timestamp,
          })
          .strict(),
      )
      .max(10_000),
  })
  .strict()
  .meta({ id: 'ErasureConfirmationBody' });

export const ErasureConfirmation = defineMessageType({
  type: MessageTypes.ERASURE_CONFIRMATION,
  body: ErasureConfirmationBody,
  data: dataSchema([] as const).meta({ id: 'ErasureConfirmationData' }),
  requiresConsent: false,
  purposes: ['case-coordination'],
  defaultPurpose: 'case-coordination',
});

export function buildErasureConfirmation(input: BuildInput<z.input<typeof ErasureConfirmationBody>, Record<string, never>>) {
  return buildMessage(ErasureConfirmation, input);
}
