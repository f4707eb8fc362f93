import { z } from 'zod';
import { SubjectRef, Timestamp } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

/** Monitoring after arrival, reported by the local partner. */
export const ReintegrationUpdateBody = z
  .object({
    subject: SubjectRef,
    period: z.object({ from: Timestamp, to: Timestamp }).strict(),
    visit: z.enum(['in-person', 'phone', 'remote', 'none']),
  })
  .strict()
  .meta({ id: 'ReintegrationUpdateBody' });

export const ReintegrationUpdateData = dataSchema(['monitoring', 'health', 'vulnerability', 'reintegration-plan'] as const).meta({
  id: 'ReintegrationUpdateData',
});

export const ReintegrationUpdate = defineMessageType({
  type: MessageTypes.REINTEGRATION_UPDATE,
  body: ReintegrationUpdateBody,
  data: ReintegrationUpdateData,
  requiresConsent: true,
  purposes: ['monitoring', 'reintegration-assistance'],
  defaultPurpose: 'monitoring',
});

export function buildReintegrationUpdate(input: BuildInput<z.input<typeof ReintegrationUpdateBody>, z.input<typeof ReintegrationUpdateData>>) {
  return buildMessage(ReintegrationUpdate, input);
}
