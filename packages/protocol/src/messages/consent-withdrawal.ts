import { z } from 'zod';
import { Purpose, Timestamp, Uuid } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

/** Withdraws a consent, wholly or for some purposes (spec/consent-and-agreements.md). */
export const ConsentWithdrawalBody = z
  .object({
    consentId: Uuid,
    /** Absent: the whole consent is withdrawn. */
    purposes: z.array(Purpose).min(1).max(Purpose.options.length).optional(),
    withdrawnAt: Timestamp,
    erasureRequested: z.boolean(),
  })
  .strict()
  .meta({ id: 'ConsentWithdrawalBody' });

export const ConsentWithdrawal = defineMessageType({
  type: MessageTypes.CONSENT_WITHDRAWAL,
  body: ConsentWithdrawalBody,
  data: dataSchema([] as const).meta({ id: 'ConsentWithdrawalData' }),
  requiresConsent: false,
  purposes: ['case-coordination'],
  defaultPurpose: 'case-coordination',
});

export function buildConsentWithdrawal(input: BuildInput<z.input<typeof ConsentWithdrawalBody>, Record<string, never>>) {
  return buildMessage(ConsentWithdrawal, input);
}
