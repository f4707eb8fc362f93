/** The shape every message type shares (spec/protocol.md §5.1) and the typed builder behind each type. */
import { z } from 'zod';
import { v7 as uuidv7 } from 'uuid';
import { ProtocolError } from '../errors.js';
import { DataCategory, MessageId, NodeId, Purpose, Timestamp, Uuid, toTimestamp } from '../vocabulary.js';
import { deriveCategories } from './personal-data.js';
import { MESSAGE_TYPE_IDS, type MessageType } from './message-types.js';

export const MessageHeader = z
  .object({
    id: MessageId,
    type: z.enum(MESSAGE_TYPE_IDS),
    from: NodeId,
    to: NodeId,
    created: Timestamp,
    expires: Timestamp,
    threadId: Uuid,
    agreementId: Uuid,
    consentId: Uuid.optional(),
    purpose: Purpose,
    categories: z.array(DataCategory).max(DataCategory.options.length),
  })
  .strict()
  .meta({ id: 'MessageHeader', description: 'Header fields shared by every message type.' });
export type MessageHeader = z.infer<typeof MessageHeader>;

/** Default lifetime of a message before delivery gives up (spec/protocol.md §5.1). */
export const DEFAULT_MESSAGE_TTL_SECONDS = 14 * 24 * 3600;

export interface MessageTypeDefinition<T extends MessageType = MessageType, B extends z.ZodType = z.ZodType, D extends z.ZodObject = z.ZodObject> {
  readonly type: T;
  /** Clear (non-personal) fields, signed as they are. */
  readonly body: B;
  /** Personal fields by category, each selectively disclosable. */
  readonly data: D;
  /** Whether a consent record must cover this message even when it carries no personal data. */
  readonly requiresConsent: boolean;
  readonly purposes: readonly Purpose[];
  readonly defaultPurpose: Purpose;
}

export function defineMessageType<T extends MessageType, B extends z.ZodType, D extends z.ZodObject>(
  def: MessageTypeDefinition<T, B, D>,
): MessageTypeDefinition<T, B, D> {
  return Object.freeze(def);
}

export interface Provenance {
  /** The original issuer-signed JWT (compact JWS), unchanged. */
  jwt: string;
  /** Digests of the original disclosures passed on with this message. */
  disclosed: string[];
}

export interface Message<B = unknown, D = Record<string, unknown>> {
  header: MessageHeader;
  body: B;
  data: D;
  /** The controller-signed consent record (compact JWS) covering this message, carried with it. */
  consentRecord?: string;
  /** For onward referrals: the original message's signed part and the disclosures passed on. */
  onward?: { jwt: string; disclosures: string[] };
}

/** Messages produced by buildMessage: validated and deeply frozen, so sealing need not re-validate. */
const built = new WeakSet<object>();

export function isBuiltMessage(message: object): boolean {
  return built.has(message);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export interface BuildInput<B, D> {
  from: string;
  to: string;
  agreementId: string;
  consentId?: string;
  consentRecord?: string;
  threadId?: string;
  purpose?: Purpose;
  id?: string;
  created?: Date;
  /** Lifetime in seconds; DEFAULT_MESSAGE_TTL_SECONDS when absent. */
  ttlSeconds?: number;
  body: B;
  data?: D;
  /** Onward referral: a presentation of a received message (its issuer-signed JWT and the disclosures passed on). */
  onward?: { jwt: string; disclosures: string[] };
  /** Categories carried by `onward` (derived by the caller from the original's structure). */
  onwardCategories?: readonly DataCategory[];
}

function schemaError(what: string, error: z.ZodError): ProtocolError {
  const issue = error.issues[0];
  const where = issue ? `${what}.${issue.path.join('.')}` : what;
  return new ProtocolError('SCHEMA_INVALID', `${where}: ${issue?.message ?? 'invalid'}`, { path: where });
}

/** Parses header, body and data of a message of this type; categories must equal those derived. */
export function validateMessage<T extends MessageType, B extends z.ZodType, D extends z.ZodObject>(
  def: MessageTypeDefinition<T, B, D>,
  message: { header: unknown; body: unknown; data: unknown },
): { header: MessageHeader; body: z.infer<B>; data: z.infer<D> } {
  const header = MessageHeader.safeParse(message.header);
  if (!header.success) throw schemaError('header', header.error);
  if (header.data.type !== def.type) throw new ProtocolError('WRONG_TYPE', `Expected ${def.type}`);
  if (!def.purposes.includes(header.data.purpose)) {
    throw new ProtocolError('SCHEMA_INVALID', `header.purpose: ${header.data.purpose} is not a purpose of ${def.type}`, { path: 'header.purpose' });
  }
  const body = def.body.safeParse(message.body);
  if (!body.success) throw schemaError('body', body.error);
  const data = def.data.safeParse(message.data ?? {});
  if (!data.success) throw schemaError('data', data.error);
  return { header: header.data, body: body.data, data: data.data };
}

export function sameCategories(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  return sa.size === a.length && sa.size === new Set(b).size && b.every((c) => sa.has(c));
}

/** Builds a validated message with a fresh UUID v7 id and the categories derived from its data. */
export function buildMessage<T extends MessageType, B extends z.ZodType, D extends z.ZodObject>(
  def: MessageTypeDefinition<T, B, D>,
  input: BuildInput<z.input<B>, z.input<D>>,
): Message<z.infer<B>, z.infer<D>> {
  const created = input.created ?? new Date();
  const data = (input.data ?? {}) as Record<string, unknown>;
  const header = {
    id: input.id ?? uuidv7({ msecs: created.getTime() }),
    type: def.type,
    from: input.from,
    to: input.to,
    created: toTimestamp(created),
    expires: toTimestamp(created.getTime() + (input.ttlSeconds ?? DEFAULT_MESSAGE_TTL_SECONDS) * 1000),
    threadId: input.threadId ?? uuidv7({ msecs: created.getTime() }),
    agreementId: input.agreementId,
    ...(input.consentId ? { consentId: input.consentId } : {}),
    purpose: input.purpose ?? def.defaultPurpose,
    categories: mergeCategories(deriveCategories(data), input.onwardCategories ?? []),
  };
  const parsed = validateMessage(def, { header, body: input.body, data });
  if (def.requiresConsent && !parsed.header.consentId) {
    throw new ProtocolError('CONSENT_MISSING', `${def.type} needs a consent id`);
  }
  const message = deepFreeze({
    header: parsed.header,
    body: parsed.body,
    data: parsed.data,
    ...(input.consentRecord ? { consentRecord: input.consentRecord } : {}),
    ...(input.onward ? { onward: { jwt: input.onward.jwt, disclosures: [...input.onward.disclosures] } } : {}),
  });
  built.add(message);
  return message;
}

function mergeCategories(a: readonly DataCategory[], b: readonly DataCategory[]): DataCategory[] {
  const all = new Set([...a, ...b]);
  return DataCategory.options.filter((c) => all.has(c));
}
