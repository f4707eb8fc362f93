import { z } from 'zod';
import { SubjectRef } from '../vocabulary.js';
import { buildMessage, defineMessageType, type BuildInput } from './define.js';
import { MessageTypes } from './message-types.js';
import { dataSchema } from './personal-data.js';

export const REFERRAL_SERVICES = [
  'information',
  'legal',
  'social',
  'medical',
  'return-counselling',
  'reception',
  'reintegration-support',
] as const;

export const ReferralBody = z
  .object({
    subject: SubjectRef,
    services: z.array(z.enum(REFERRAL_SERVICES)).min(1).max(REFERRAL_SERVICES.length),
    urgency: z.enum(['routine', 'urgent', 'emergency']),
    /** Free text must not identify the person; personal details go in `data`. */
    reasonCode: z.enum(['orientation', 'transfer-of-case', 'continuity-of-care', 'cross-border-coordination', 'pre-departure', 'other']),
  })
  .strict()
  .meta({ id: 'ReferralBody' });

export const ReferralData = dataSchema([
  'identity',
  'contact',
  'civil-status',
  'documents',
  'family',
  'education-skills',
  'employment',
  'health',
  'vulnerability',
  'legal-status',
  'return-travel',
  'reintegration-plan',
] as const).meta({ id: 'ReferralData' });

export const Referral = defineMessageType({
  type: MessageTypes.REFERRAL,
  body: ReferralBody,
  data: ReferralData,
  requiresConsent: true,
  purposes: ['referral', 'return-counselling', 'reintegration-planning', 'case-coordination'],
  defaultPurpose: 'referral',
});

export type ReferralBody = z.infer<typeof ReferralBody>;
export type ReferralData = z.infer<typeof ReferralData>;

export function buildReferral(input: BuildInput<z.input<typeof ReferralBody>, z.input<typeof ReferralData>>) {
  return buildMessage(Referral, input);
}
