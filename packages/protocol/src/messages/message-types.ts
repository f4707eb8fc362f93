/** Message-type identifiers (spec/protocol.md §5). Use these constants, never string literals. */
export const MessageTypes = {
  REFERRAL: 'referral',
  REFERRAL_RESPONSE: 'referral-response',
  REINTEGRATION_PROFILE: 'reintegration-profile',
  REINTEGRATION_UPDATE: 'reintegration-update',
  CASE_CLOSURE: 'case-closure',
  CONSENT_WITHDRAWAL: 'consent-withdrawal',
  ERASURE_CONFIRMATION: 'erasure-confirmation',
  PROBLEM_REPORT: 'problem-report',
} as const;

export type MessageType = (typeof MessageTypes)[keyof typeof MessageTypes];
export const MESSAGE_TYPE_IDS = Object.values(MessageTypes) as [MessageType, ...MessageType[]];

/** The JWS `typ` of a message type's issuer-signed JWT. */
export function messageTyp(type: MessageType): string {
  return `passerelle-${type}+sd-jwt`;
}

const TYP_TO_TYPE = new Map<string, MessageType>(MESSAGE_TYPE_IDS.map((t) => [messageTyp(t), t]));

export function messageTypeFromTyp(typ: string): MessageType | undefined {
  return TYP_TO_TYPE.get(typ);
}

export const MESSAGE_TYPS: readonly string[] = [...TYP_TO_TYPE.keys()];
