import { z } from 'zod';
import { SubjectRef, Timestamp } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

export const CaseClosureBody = z
  .object({
    subject: SubjectRef,
    reason: z.enum(['completed', 'withdrawn-by-person', 'transferred', 'lost-contact', 'not-eligible', 'other']),
    closedAt: Timestamp,
  })
  .strict()
  .meta({ id: 'CaseClosureBody' });

export const CaseClosureData = dataSchema(['monitoring'] as const).meta({ id: 'CaseClosureData' });

export const CaseClosure = defineMessageType({
  type: MessageTypes.CASE_CLOSURE,
  body: CaseClosureBody,
  data: CaseClosureData,
  requiresConsent: false,
  purposes: ['case-coordination', 'monitoring', 'reintegration-assistance', 'referral'],
  defaultPurpose: 'case-coordination',
});

export function buildCaseClosure(input: BuildInput<z.input<typeof CaseClosureBody>, z.input<typeof CaseClosureData>>) {
  return buildMessage(CaseClosure, input);
}
