import { z } from 'zod';
import { isErrorCode } from '../errors.js';
import { MessageId } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

/** Reports a problem with an earlier message in the thread; never carries personal data. */
export const ProblemReportBody = z
  .object({
    code: z.string().refine(isErrorCode, { message: 'must be a protocol error code' }),
    inReplyTo: MessageId.optional(),
    description: z.string().max(1000).optional(),
    retryable: z.boolean(),
  })
  .strict()
  .meta({ id: 'ProblemReportBody' });

export const ProblemReport = defineMessageType({
  type: MessageTypes.PROBLEM_REPORT,
  body: ProblemReportBody,
  data: dataSchema([] as const).meta({ id: 'ProblemReportData' }),
  requiresConsent: false,
  purposes: ['case-coordination', 'referral', 'return-counselling', 'reintegration-planning', 'reintegration-assistance', 'monitoring'],
  defaultPurpose: 'case-coordination',
});

export function buildProblemReport(input: BuildInput<z.input<typeof ProblemReportBody>, Record<string, never>>) {
  return buildMessage(ProblemReport, input);
}
