/**
 * Local API bearer tokens (spec/node.md §5.1). A secret is 256 random bits shown once at creation;
 * the store keeps only its SHA-256, so a copy of the database grants nothing.
 */
import { v7 as uuidv7 } from 'uuid';
import { ProtocolError, randomB64u, sha256b64u } from '@passerelle/protocol';
import type { Store, TokenRecord } from '../store/types.js';

export const TOKEN_ROLES = ['caseworker', 'administrator', 'auditor'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];
const TOKEN_PREFIX = 'pst_';

export interface CreatedToken {
  id: string;
  role: TokenRole;
  label: string;
  /** The bearer secret: returned once, never stored. */
  secret: string;
}

export async function createToken(store: Store, role: TokenRole, label: string, now = new Date()): Promise<CreatedToken> {
  if (!TOKEN_ROLES.includes(role)) throw new ProtocolError('SCHEMA_INVALID', 'Unknown token role');
  if (typeof label !== 'string' || label.length === 0 || label.length > 200) throw new ProtocolError('SCHEMA_INVALID', 'A token label has 1 to 200 characters');
  const secret = `${TOKEN_PREFIX}${randomB64u(32)}`;
  const record: TokenRecord = { id: uuidv7(), hash: await sha256b64u(secret), role, label, createdAt: now.toISOString() };
  await store.putToken(record);
  await store.appendAudit({ kind: 'token.created', fields: { tokenId: record.id, role }, at: record.createdAt });
  return { id: record.id, role, label, secret };
}

export async function revokeToken(store: Store, id: string, now = new Date()): Promise<void> {
  const record = (await store.listTokens()).find((t) => t.id === id);
  if (!record) throw new ProtocolError('NOT_FOUND', 'No token with this id');
  await store.putToken({ ...record, revokedAt: now.toISOString() });
  await store.appendAudit({ kind: 'token.revoked', fields: { tokenId: id }, at: now.toISOString() });
}

/** The token behind an `Authorization: Bearer` header; UNAUTHORIZED for anything else. */
export async function authenticateBearer(store: Store, header: string | undefined): Promise<TokenRecord> {
  const match = /^Bearer ([A-Za-z0-9_-]{20,100})$/.exec(header ?? '');
  if (!match) throw new ProtocolError('UNAUTHORIZED');
  const record = await store.findTokenByHash(await sha256b64u(match[1]!));
  if (!record || record.revokedAt !== undefined) throw new ProtocolError('UNAUTHORIZED');
  return record;
}
