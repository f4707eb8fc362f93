/** Request schemas of the local API (spec/node.md §5); the OpenAPI description is generated from them. */
import { z } from 'zod';
import { MESSAGE_TYPE_IDS, NodeId, Purpose, Uuid } from '@passerelle/protocol';
import { TOKEN_ROLES } from '../../auth/tokens.js';
import { GeneralJwsInput } from '../../services/agreements.js';
import { RecordConsentInput, WithdrawConsentInput } from '../../services/consents.js';

export { GeneralJwsInput, RecordConsentInput, WithdrawConsentInput };

export const SendMessageInput = z
  .strictObject({
    type: z.enum(MESSAGE_TYPE_IDS),
    to: NodeId,
    agreementId: Uuid,
    consentId: Uuid.optional(),
    threadId: Uuid.optional(),
    purpose: Purpose.optional(),
    /** Validated against the message type's body schema when the message is built. */
    body: z.record(z.string(), z.unknown()),
    data: z.record(z.string(), z.unknown()).optional(),
    ttlSeconds: z.number().int().min(60).max(365 * 24 * 3600).optional(),
  })
  .meta({ id: 'SendMessageInput', description: 'A message to build, check against consent and agreement, seal and queue.' });

export const AddPeerInput = z
  .strictObject({
    nodeId: NodeId,
    fingerprints: z.array(z.string().regex(/^[A-Za-z0-9_-]{43}$/)).min(1).max(16),
    fetchDocument: z.boolean().optional(),
  })
  .meta({ id: 'AddPeerInput', description: 'Pins a peer by node id and signing-key fingerprints (RFC 7638), exchanged out of band.' });

export const RefreshPeerInput = z.strictObject({ nodeId: NodeId }).meta({ id: 'RefreshPeerInput' });

export const SignAgreementInput = z
  .strictObject({
    /** An agreement payload (id, version and createdAt filled in when absent) or a JWS signed so far. */
    agreement: z.union([GeneralJwsInput, z.record(z.string(), z.unknown())]),
  })
  .meta({ id: 'SignAgreementInput', description: 'An agreement to sign on behalf of this node: a new payload, or the JWS another party signed.' });

export const RegisterAgreementInput = z.strictObject({ jws: GeneralJwsInput }).meta({ id: 'RegisterAgreementInput' });

export const TerminateAgreementInput = z.strictObject({ reason: z.string().trim().min(1).max(1000) }).meta({ id: 'TerminateAgreementInput' });

export const RegisterTerminationInput = z.strictObject({ jws: z.string().min(1).max(16_384) }).meta({ id: 'RegisterTerminationInput' });

export const CreateTokenInput = z
  .strictObject({ role: z.enum(TOKEN_ROLES), label: z.string().min(1).max(200) })
  .meta({ id: 'CreateTokenInput' });

export const OutboxQuery = z.strictObject({
  state: z.enum(['queued', 'delivered', 'rejected', 'cancelled', 'failed']).optional(),
  peer: NodeId.optional(),
  consentId: Uuid.optional(),
  threadId: Uuid.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export const InboxQuery = z.strictObject({
  sender: NodeId.optional(),
  consentId: Uuid.optional(),
  threadId: Uuid.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export const AuditQuery = z.strictObject({
  from: z.coerce.number().int().min(0).default(0),
  to: z.coerce.number().int().min(0).optional(),
});

/** GET /audit/bundle: the scope's kind and its members (spec/audit.md §4.2); the export checks them. */
export const AuditBundleQuery = z.strictObject({
  scope: z.enum(['all', 'range', 'thread', 'consent', 'peer']).default('all'),
  from: z.string().max(64).optional(),
  to: z.string().max(64).optional(),
  threadId: Uuid.optional(),
  consentId: Uuid.optional(),
  peer: NodeId.optional(),
  withDisclosures: z.enum(['true', 'false']).optional(),
});

export const AuditCheckpointsQuery = z.strictObject({
  after: z.coerce.number().int().min(-1).default(-1),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const InclusionProofQuery = z.strictObject({
  index: z.coerce.number().int().min(0),
  size: z.coerce.number().int().min(1).optional(),
});

export const ConsistencyProofQuery = z.strictObject({
  from: z.coerce.number().int().min(0),
  to: z.coerce.number().int().min(0),
});

export const IdParam = z.strictObject({ id: Uuid });
