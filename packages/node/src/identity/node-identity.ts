/**
 * Who this node is: its private keys and its own signed node document (spec/protocol.md §3).
 * The document is re-issued (version + 1, signed by the current keys) when the configuration
 * changes what it says or when it nears expiry, so peers never see an expired document.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createNodeDocument,
  MESSAGE_TYPE_IDS,
  nodeFingerprints,
  nodeKeyEntry,
  ProtocolError,
  rotateNodeDocument,
  verifyNodeDocument,
  type EncryptionKeyPair,
  type GeneralJws,
  type NodeDocument,
  type PublicSigningJwk,
  type SigningKeyPair,
  type VerifiedNodeDocument,
} from '@passerelle/protocol';
import type { ResolvedConfig } from '../config.js';
import { readKeyRing, type KeyRing } from './key-files.js';

export const NODE_DOCUMENT_FILE = 'node-document.json';
/** Re-issue the document when less than this remains before it expires. */
export const DOCUMENT_RENEWAL_MARGIN_MS = 7 * 24 * 3600_000;

export class NodeIdentity {
  readonly id: string;
  readonly #ring: KeyRing;
  #verified: VerifiedNodeDocument;

  constructor(ring: KeyRing, verified: VerifiedNodeDocument) {
    this.id = verified.document.id;
    this.#ring = ring;
    this.#verified = verified;
  }

  get document(): NodeDocument {
    return this.#verified.document;
  }

  get verified(): VerifiedNodeDocument {
    return this.#verified;
  }

  get documentJws(): GeneralJws {
    return this.#verified.jws;
  }

  /** Fingerprints a peer pins for this node (every signing key listed). */
  fingerprints(): string[] {
    return nodeFingerprints(this.document);
  }

  /** Signing keys we hold that the document lists as valid at `now`, most recent first. */
  currentSigningKeys(now: Date = new Date()): SigningKeyPair[] {
    const t = now.getTime();
    const entries = this.document.keys
      .map((k, index) => ({ k, index }))
      .filter(
        ({ k }) =>
          k.use === 'sig' &&
          Date.parse(k.notBefore) <= t &&
          (k.notAfter === undefined || t < Date.parse(k.notAfter)) &&
          (k.revokedAt === undefined || t < Date.parse(k.revokedAt)),
      )
      // Latest notBefore first; on a tie the key listed later (added by a rotation) wins.
      .sort((a, b) => Date.parse(b.k.notBefore) - Date.parse(a.k.notBefore) || b.index - a.index)
      .map(({ k }) => k);
    return entries.map((e) => this.#ring.signing.find((p) => p.kid === e.kid)).filter((p): p is SigningKeyPair => p !== undefined);
  }

  signingKey(now: Date = new Date()): SigningKeyPair {
    const key = this.currentSigningKeys(now)[0];
    if (!key) throw new ProtocolError('KEY_NOT_VALID', 'This node holds no signing key valid now');
    return key;
  }

  /** Decryption keys by kid: any listed X25519 key we still hold (messages sealed just before a rotation still open). */
  decryptionKey(kid: string): EncryptionKeyPair | undefined {
    if (!this.document.keys.some((k) => k.kid === kid && k.use === 'enc' && k.revocationReason !== 'compromised')) return undefined;
    return this.#ring.encryption.find((p) => p.kid === kid);
  }

  /** Our own public signing key `kid` if it was valid at `at`. */
  ownSigningKey(kid: string, at: Date): PublicSigningJwk | undefined {
    const entry = this.document.keys.find((k) => k.kid === kid && k.use === 'sig');
    if (!entry || entry.use !== 'sig') return undefined;
    const t = at.getTime();
    const valid = Date.parse(entry.notBefore) <= t && (entry.notAfter === undefined || t < Date.parse(entry.notAfter)) && (entry.revokedAt === undefined || t < Date.parse(entry.revokedAt));
    return valid ? entry.jwk : undefined;
  }

  /** Adds freshly generated keys (already written to disk) before the document that lists them. */
  addKeys(pairs: readonly (SigningKeyPair | EncryptionKeyPair)[]): void {
    for (const pair of pairs) {
      if (pair.publicJwk.crv === 'Ed25519') this.#ring.signing.push(pair as SigningKeyPair);
      else this.#ring.encryption.push(pair as EncryptionKeyPair);
    }
  }

  replaceDocument(next: VerifiedNodeDocument): void {
    if (next.document.id !== this.id || next.document.version < this.document.version) {
      throw new ProtocolError('NODE_DOCUMENT_STALE', 'Refusing to replace the node document with an older one');
    }
    this.#verified = next;
  }
}

export interface DocumentFields {
  id: string;
  name: string;
  country: string;
  roles: NodeDocument['roles'];
  languages: string[];
}

export async function createInitialDocument(fields: DocumentFields, signing: SigningKeyPair, encryption: EncryptionKeyPair, now = new Date()): Promise<GeneralJws> {
  return createNodeDocument(
    {
      id: fields.id,
      name: fields.name,
      country: fields.country,
      roles: fields.roles,
      inbox: `${fields.id}/inbox`,
      keys: [nodeKeyEntry(signing, { notBefore: now }), nodeKeyEntry(encryption, { notBefore: now })],
      messageTypes: [...MESSAGE_TYPE_IDS],
      languages: fields.languages,
    },
    [signing],
    { now },
  );
}

export async function writeDocumentFile(dataDir: string, jws: GeneralJws): Promise<void> {
  const file = join(dataDir, NODE_DOCUMENT_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(jws, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, file);
}

export async function readDocumentFile(dataDir: string): Promise<GeneralJws> {
  try {
    return JSON.parse(await readFile(join(dataDir, NODE_DOCUMENT_FILE), 'utf8')) as GeneralJws;
  } catch (e) {
    throw new ProtocolError('NODE_DOCUMENT_INVALID', 'Cannot read this node\'s document', undefined, { cause: e });
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Loads keys and document, checks that the document is ours (our keys signed it) and re-issues it
 * when the configuration changed or it nears expiry. The new version is written before use.
 */
export async function loadIdentity(config: ResolvedConfig, now = new Date()): Promise<NodeIdentity> {
  const ring = await readKeyRing(config.dataDir);
  const jws = await readDocumentFile(config.dataDir);
  const pinned = ring.signing.map((k) => k.kid);
  // An expired own document is still ours: verify it as of its own issue time, then renew it.
  let verified: VerifiedNodeDocument;
  try {
    verified = await verifyNodeDocument(jws, { pinnedFingerprints: pinned, expectedId: config.id, now });
  } catch (e) {
    if (!(e instanceof ProtocolError) || e.code !== 'NODE_DOCUMENT_EXPIRED') throw e;
    const issued = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as { issuedAt: string };
    verified = await verifyNodeDocument(jws, { pinnedFingerprints: pinned, expectedId: config.id, now: new Date(issued.issuedAt) });
  }
  const identity = new NodeIdentity(ring, verified);
  const doc = verified.document;
  const changed =
    doc.name !== config.name || doc.country !== config.country || !sameList(doc.roles, config.roles) || !sameList(doc.languages, config.languages);
  const expiring = Date.parse(doc.expiresAt) - now.getTime() < DOCUMENT_RENEWAL_MARGIN_MS;
  if (changed || expiring) await reissueDocument(identity, config, now);
  return identity;
}

/** Issues the next version of our document with the configured fields, signed by the current keys. */
export async function reissueDocument(identity: NodeIdentity, config: ResolvedConfig, now = new Date()): Promise<void> {
  const current = identity.currentSigningKeys(now);
  if (current.length === 0) throw new ProtocolError('KEY_NOT_VALID', 'No current signing key to re-issue the node document');
  const previous = identity.verified;
  const start = new Date(Math.max(now.getTime(), Date.parse(previous.document.issuedAt)));
  const jws = await rotateNodeDocument(
    previous,
    { name: config.name, country: config.country, roles: config.roles, languages: config.languages },
    { oldKeys: current, newKeys: current, now: start },
  );
  const next = await verifyNodeDocument(jws, { known: previous, now: start });
  await writeDocumentFile(config.dataDir, jws);
  identity.replaceDocument(next);
}
