import type { MessageTypeDefinition } from './define.js';
import { MessageTypes, type MessageType } from './message-types.js';
import { Referral } from './referral.js';
import { ReferralResponse } from './referral-response.js';
import { ReintegrationProfile } from './reintegration-profile.js';
import { ReintegrationUpdate } from './reintegration-update.js';
import { CaseClosure } from './case-closure.js';
import { ConsentWithdrawal } from './consent-withdrawal.js';
import { ErasureConfirmation } from './erasure-confirmation.js';
import { ProblemReport } from './problem-report.js';

export const MESSAGE_DEFINITIONS = {
  [MessageTypes.REFERRAL]: Referral,
  [MessageTypes.REFERRAL_RESPONSE]: ReferralResponse,
  [MessageTypes.REINTEGRATION_PROFILE]: ReintegrationProfile,
  [MessageTypes.REINTEGRATION_UPDATE]: ReintegrationUpdate,
  [MessageTypes.CASE_CLOSURE]: CaseClosure,
  [MessageTypes.CONSENT_WITHDRAWAL]: ConsentWithdrawal,
  [MessageTypes.ERASURE_CONFIRMATION]: ErasureConfirmation,
  [MessageTypes.PROBLEM_REPORT]: ProblemReport,
} as const satisfies Record<MessageType, MessageTypeDefinition>;

export function definitionOf(type: MessageType): MessageTypeDefinition {
  return MESSAGE_DEFINITIONS[type] as MessageTypeDefinition;
}
