import { z } from 'zod';
import { DataCategory, MessageId, SubjectRef } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

export const ReferralResponseBody = z
  .object({
    inReplyTo: MessageId,
    subject: SubjectRef,
    decision: z.enum(['accepted', 'declined', 'needs-information']),
    /** Why a referral was declined. */
    declineReason: z.enum(['no-capacity', 'out-of-scope', 'not-eligible', 'duplicate', 'other']).optional(),
    /** For needs-information: which categories the receiver asks for. */
    requestedCategories: z.array(DataCategory).max(DataCategory.options.length).optional(),
    /** Pseudonymous reference of the receiver's own case, for later messages in the thread. */
    receiverCaseRef: SubjectRef.optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.decision === 'declined' && !b.declineReason) ctx.addIssue({ code: 'custom', path: ['declineReason'], message: 'required when declined' });
    if (b.decision === 'needs-information' && !b.requestedCategories?.length) {
      ctx.addIssue({ code: 'custom', path: ['requestedCategories'], message: 'required when needs-information' });
    }
  })
  .meta({ id: 'ReferralResponseBody' });

export const ReferralResponseData = dataSchema(['contact'] as const).meta({ id: 'ReferralResponseData' });

export const ReferralResponse = defineMessageType({
  type: MessageTypes.REFERRAL_RESPONSE,
  body: ReferralResponseBody,
  data: ReferralResponseData,
  requiresConsent: false,
  purposes: ['referral', 'return-counselling', 'reintegration-planning', 'case-coordination'],
  defaultPurpose: 'referral',
});

export function buildReferralResponse(input: BuildInput<z.input<typeof ReferralResponseBody>, z.input<typeof ReferralResponseData>>) {
  return buildMessage(ReferralResponse, input);
}
