/**
 * Data-sharing agreements as an administrator handles them (DESIGN flow 1): produce this node's
 * signature on an agreement (co-signing happens out of band, each admin adding theirs), register
 * the co-signed result, terminate one.
 */
import { z } from 'zod';
import {
  peekCompactPayload,
  ProtocolError,
  signAgreement,
  signTermination,
  toTimestamp,
  verifyAgreement,
  verifyTermination,
  type Agreement,
  type GeneralJws,
  type NodeKeyResolver,
  type VerifiedAgreement,
} from '@passerelle/protocol';
import type { NodeIdentity } from '../identity/node-identity.js';
import type { PolicyContext } from '../policy/policy-context.js';
import type { Store } from '../store/types.js';

export const GeneralJwsInput = z
  .strictObject({
    payload: z.string().min(1).max(2 * 1024 * 1024),
    signatures: z.array(z.strictObject({ protected: z.string().max(4096), signature: z.string().max(256) })).min(1).max(16),
  })
  // Not 'GeneralJws': the protocol registers that id for the audit bundle's (smaller) bound, and
  // OpenAPI components are one namespace.
  .meta({ id: 'GeneralJwsInput', description: 'JWS General JSON Serialization (RFC 7515 §7.2.1).' });

export interface AgreementDeps {
  identity: NodeIdentity;
  store: Store;
  policy: PolicyContext;
  resolve: NodeKeyResolver;
  now: () => Date;
}

export interface AgreementSummary {
  id: string;
  version: number;
  title: string;
  parties: Agreement['parties'];
  purposes: Agreement['purposes'];
  validFrom: string;
  validUntil: string;
  state: VerifiedAgreement['state'];
  inForce: boolean;
  signedBy: string[];
  missingSignatures: string[];
}

export function summarise(v: VerifiedAgreement): AgreementSummary {
  const a = v.agreement;
  return {
    id: a.id,
    version: a.version,
    title: a.title,
    parties: a.parties,
    purposes: a.purposes,
    validFrom: a.validFrom,
    validUntil: a.validUntil,
    state: v.state,
    inForce: v.inForce,
    signedBy: v.signedBy,
    missingSignatures: v.missingSignatures,
  };
}

/**
 * Adds this node's signature. Signatures are checked against keys held at the agreement's
 * `createdAt`, so the node signs with a key valid then.
 */
export async function signAgreementAsNode(deps: AgreementDeps, payloadOrJws: Agreement | GeneralJws): Promise<GeneralJws> {
  const createdAt = 'payload' in payloadOrJws
    ? (JSON.parse(Buffer.from(payloadOrJws.payload, 'base64url').toString('utf8')) as { createdAt?: string }).createdAt
    : payloadOrJws.createdAt;
  const at = createdAt !== undefined && !Number.isNaN(Date.parse(createdAt)) ? new Date(createdAt) : deps.now();
  const key = deps.identity.currentSigningKeys(at)[0];
  if (!key) throw new ProtocolError('KEY_NOT_VALID', 'This node held no signing key at the agreement\'s createdAt; recreate the agreement');
  return signAgreement(payloadOrJws, deps.identity.id, key);
}

export async function registerAgreement(deps: AgreementDeps, jws: GeneralJws): Promise<AgreementSummary> {
  const now = deps.now();
  const verified = await verifyAgreement(jws, deps.resolve, { now });
  const agreement = verified.agreement;
  if (!agreement.parties.some((p) => p.node === deps.identity.id)) {
    throw new ProtocolError('AGREEMENT_INVALID', 'This node is not a party to the agreement');
  }
  const existing = await deps.store.getAgreement(agreement.id);
  if (existing && existing.version > agreement.version) throw new ProtocolError('AGREEMENT_INVALID', 'A newer version of this agreement is registered');
  await deps.store.putAgreement({
    id: agreement.id,
    version: agreement.version,
    jws: JSON.stringify(verified.jws),
    terminations: existing?.terminations ?? [],
    registeredAt: now.toISOString(),
  });
  await deps.store.appendAudit({
    kind: 'agreement.registered',
    fields: { agreementId: agreement.id, version: agreement.version, parties: agreement.parties.map((p) => p.node), state: verified.state },
    at: now.toISOString(),
  });
  const current = await deps.policy.agreement(agreement.id, now);
  return summarise(current ?? verified);
}

export async function listAgreements(deps: AgreementDeps): Promise<AgreementSummary[]> {
  const now = deps.now();
  const out: AgreementSummary[] = [];
  for (const row of await deps.store.listAgreements()) {
    const v = await deps.policy.agreement(row.id, now);
    if (v) out.push(summarise(v));
  }
  return out;
}

/** Terminates an agreement on this node's behalf; returns the signed termination to send to the other parties. */
export async function terminateAgreement(deps: AgreementDeps, agreementId: string, reason: string): Promise<string> {
  const now = deps.now();
  const current = await deps.policy.agreement(agreementId, now);
  if (!current) throw new ProtocolError('AGREEMENT_MISSING');
  const jws = await signTermination({ agreementId, by: deps.identity.id, at: toTimestamp(now), reason }, deps.identity.signingKey(now));
  await deps.store.addTermination(agreementId, jws);
  await deps.store.appendAudit({ kind: 'agreement.terminated', fields: { agreementId, by: deps.identity.id }, at: now.toISOString() });
  return jws;
}

/** Records a termination signed by another party. */
export async function registerTermination(deps: AgreementDeps, jws: string): Promise<void> {
  const now = deps.now();
  const { agreementId } = peekCompactPayload(jws);
  const current = typeof agreementId === 'string' ? await deps.policy.agreement(agreementId, now) : undefined;
  if (!current) throw new ProtocolError('AGREEMENT_MISSING');
  const verified = await verifyTermination(jws, current, deps.resolve);
  await deps.store.addTermination(current.agreement.id, jws);
  await deps.store.appendAudit({ kind: 'agreement.terminated', fields: { agreementId: current.agreement.id, by: verified.termination.by }, at: now.toISOString() });
}
