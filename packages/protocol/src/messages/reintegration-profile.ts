import { z } from 'zod';
import { SubjectRef } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

/** The pre-departure picture an origin-country partner needs: economic, social and psychosocial. */
export const ReintegrationProfileBody = z
  .object({
    subject: SubjectRef,
    dimensions: z.array(z.enum(['economic', 'social', 'psychosocial'])).min(1).max(3),
    assistancePackage: z.enum(['standard', 'enhanced', 'vulnerable-case']),
  })
  .strict()
  .meta({ id: 'ReintegrationProfileBody' });

export const ReintegrationProfileData = dataSchema([
  'identity',
  'contact',
  'documents',
  'family',
  'education-skills',
  'employment',
  'health',
  'vulnerability',
  'return-travel',
  'reintegration-plan',
] as const).meta({ id: 'ReintegrationProfileData' });

export const ReintegrationProfile = defineMessageType({
  type: MessageTypes.REINTEGRATION_PROFILE,
  body: ReintegrationProfileBody,
  data: ReintegrationProfileData,
  requiresConsent: true,
  purposes: ['reintegration-planning', 'reintegration-assistance'],
  defaultPurpose: 'reintegration-planning',
});

export function buildReintegrationProfile(input: BuildInput<z.input<typeof ReintegrationProfileBody>, z.input<typeof ReintegrationProfileData>>) {
  return buildMessage(ReintegrationProfile, input);
}
