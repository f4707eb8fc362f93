/**
 * HTTP Message Signatures (RFC 9421) for requests between nodes, in one fixed profile:
 * Ed25519 (§3.3.6), label `pas`, covered components `"@method" "@target-uri" "content-digest"
 * "content-type"` in that order, parameters `created`, optional `expires`, `keyid`, `alg` and
 * `tag="passerelle"` (§2.3). Fixing the list and its order leaves one signature base per request,
 * so there is nothing for a sender and a receiver to disagree on.
 *
 * The signature covers Content-Digest, not the body: a receiver must also check the body against
 * that field (pass `body` to verifyRequest, or call verifyContentDigest itself).
 */
import {
  ProtocolError,
  PublicSigningJwk,
  cryptoKeyFor,
  type SigningKeyPair,
} from '@passerelle/protocol';
import { verifyContentDigest } from './content-digest.js';
import {
  parseDictionary,
  serializeBareItem,
  serializeInnerList,
  type BareItem,
  type InnerList,
  type Item,
  type Parameters,
} from './structured-fields.js';

export const SIGNATURE_LABEL = 'pas';
export const SIGNATURE_TAG = 'passerelle';
export const SIGNATURE_ALG = 'ed25519';
export const COVERED_COMPONENTS = ['@method', '@target-uri', 'content-digest', 'content-type'] as const;
export const DEFAULT_MAX_SKEW_SECONDS = 300;
/** Bound on each of Signature-Input and Signature, checked before parsing. */
export const MAX_SIGNATURE_FIELD_LENGTH = 4096;
const MAX_KEYID_LENGTH = 256;
const ED25519_SIGNATURE_BYTES = 64;
const ALLOWED_PARAMS = new Set(['created', 'expires', 'keyid', 'alg', 'tag']);

export type HeaderValue = string | readonly string[] | undefined;
export type RequestHeaders = Readonly<Record<string, HeaderValue>>;

export type SignatureKeyResolver = (
  keyid: string,
) => PublicSigningJwk | undefined | Promise<PublicSigningJwk | undefined>;

export interface SignRequestInput {
  method: string;
  /** The absolute URI the request is sent to, exactly as the sender addresses it. */
  url: string;
  /** Must already hold `content-digest` and `content-type` (names are case-insensitive). */
  headers: Readonly<Record<string, string>>;
  key: SigningKeyPair;
  /** UNIX seconds; defaults to now. */
  created?: number;
  /** UNIX seconds; omitted by default (freshness is bounded by `created` and the skew window). */
  expires?: number;
}

export interface SignatureHeaders {
  'signature-input': string;
  signature: string;
}

export interface VerifyRequestInput {
  method: string;
  /**
   * The absolute target URI, rebuilt by the receiver from its own configured public origin and
   * the request path and query (for example `https://node.example` + `/inbox`), never from the
   * Host header or X-Forwarded-* fields, which the sender controls. A request signed for another
   * origin therefore fails, which is what stops a signature being replayed to a different node.
   */
  url: string;
  headers: RequestHeaders;
  /**
   * Maps a keyid to a pinned peer's signing key, or undefined. This is the allow-list: it must
   * only answer for keys of peers in the trust store.
   */
  resolveKey: SignatureKeyResolver;
  /** When given, the body is checked against Content-Digest once the signature verifies. */
  body?: Uint8Array;
  /** UNIX seconds; defaults to now. */
  now?: number;
  maxSkewSeconds?: number;
}

export interface VerifiedRequest {
  keyid: string;
  created: number;
}

/** RFC 9421 §2.5: one `"<component>": <value>` line per covered component, `@signature-params` last. */
export function buildSignatureBase(components: readonly (readonly [name: string, value: string])[], signatureParams: string): string {
  let base = '';
  for (const [name, value] of components) {
    if (/[\r\n]/.test(value)) throw new ProtocolError('MALFORMED', `Component ${name} contains a line break`);
    base += `${serializeBareItem({ type: 'string', value: name })}: ${value}\n`;
  }
  return `${base}"@signature-params": ${signatureParams}`;
}

/** RFC 9421 §2.1: values of every field line with this name, trimmed, joined with ", ". */
function fieldValue(headers: RequestHeaders, name: string): string | undefined {
  const values: string[] = [];
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    for (const v of typeof value === 'string' ? [value] : value) values.push(v.trim());
  }
  return values.length === 0 ? undefined : values.join(', ');
}

/**
 * RFC 9421 §2.2.2: the absolute target URI, without fragment; userinfo is refused. Both sides
 * serialise it through the WHATWG URL parser (as fetch does on the wire), so spellings that name
 * the same resource (host case, default port, empty path) give one value.
 */
function targetUri(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ProtocolError('MALFORMED', 'Target URI must be absolute');
  }
  if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.username !== '' || parsed.password !== '') {
    throw new ProtocolError('MALFORMED', 'Target URI must be http(s) without userinfo');
  }
  parsed.hash = '';
  return parsed.href;
}

function componentValues(method: string, url: string, headers: RequestHeaders): [string, string][] {
  const values: [string, string][] = [
    ['@method', method],
    ['@target-uri', targetUri(url)],
  ];
  for (const name of ['content-digest', 'content-type'] as const) {
    const value = fieldValue(headers, name);
    if (value === undefined) throw new ProtocolError('MALFORMED', `Header ${name} is required`);
    values.push([name, value]);
  }
  return values;
}

function signatureParamsList(params: { created: number; expires?: number | undefined; keyid: string }): InnerList {
  const list: Parameters = new Map<string, BareItem>([['created', { type: 'integer', value: params.created }]]);
  if (params.expires !== undefined) list.set('expires', { type: 'integer', value: params.expires });
  list.set('keyid', { type: 'string', value: params.keyid });
  list.set('alg', { type: 'string', value: SIGNATURE_ALG });
  list.set('tag', { type: 'string', value: SIGNATURE_TAG });
  return {
    kind: 'inner-list',
    items: COVERED_COMPONENTS.map((name): Item => ({ kind: 'item', value: { type: 'string', value: name }, params: new Map() })),
    params: list,
  };
}

function asTimestamp(value: number | undefined, name: string): number | undefined {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
    throw new ProtocolError('MALFORMED', `${name} must be a non-negative integer of seconds`);
  }
  return value;
}

export async function signRequest(input: SignRequestInput): Promise<SignatureHeaders> {
  const created = asTimestamp(input.created, 'created') ?? Math.floor(Date.now() / 1000);
  const expires = asTimestamp(input.expires, 'expires');
  if (expires !== undefined && expires <= created) throw new ProtocolError('MALFORMED', 'expires must be after created');
  const signatureParams = serializeInnerList(signatureParamsList({ created, expires, keyid: input.key.kid }));
  const base = buildSignatureBase(componentValues(input.method, input.url, input.headers), signatureParams);
  const key = await cryptoKeyFor(input.key.privateJwk, 'EdDSA');
  const signature = new Uint8Array(await crypto.subtle.sign('Ed25519', key, new TextEncoder().encode(base)));
  return {
    'signature-input': `${SIGNATURE_LABEL}=${signatureParams}`,
    signature: `${SIGNATURE_LABEL}=${serializeBareItem({ type: 'bytes', value: signature })}`,
  };
}

/** Every authentication failure looks the same to the requester; the reason is kept as `cause` for logs. */
function unauthenticated(reason: string): ProtocolError {
  return new ProtocolError('REQUEST_UNAUTHENTICATED', undefined, undefined, { cause: new Error(reason) });
}

function rfc3339(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

interface ParsedSignature {
  keyid: string;
  created: number;
  expires: number | undefined;
  signatureParams: string;
  signature: Uint8Array;
}

/** Everything that needs no key and no cryptography: field sizes, syntax and the profile. */
function parseSignatureFields(headers: RequestHeaders): ParsedSignature {
  const inputField = fieldValue(headers, 'signature-input');
  const signatureField = fieldValue(headers, 'signature');
  if (inputField === undefined || signatureField === undefined) throw unauthenticated('no signature');
  let inputs, signatures;
  try {
    inputs = parseDictionary(inputField, MAX_SIGNATURE_FIELD_LENGTH);
    signatures = parseDictionary(signatureField, MAX_SIGNATURE_FIELD_LENGTH);
  } catch (e) {
    throw unauthenticated(`unparseable signature fields: ${(e as Error).message}`);
  }
  let label = SIGNATURE_LABEL;
  if (!inputs.has(label)) {
    const only = inputs.size === 1 ? inputs.keys().next().value : undefined;
    if (only === undefined) throw unauthenticated(`no "${SIGNATURE_LABEL}" signature`);
    label = only;
  }
  const input = inputs.get(label);
  const signature = signatures.get(label);
  if (input?.kind !== 'inner-list') throw unauthenticated('signature input is not an inner list');
  if (signature?.kind !== 'item' || signature.value.type !== 'bytes' || signature.params.size > 0) {
    throw unauthenticated('signature is not a byte sequence');
  }
  if (signature.value.value.length !== ED25519_SIGNATURE_BYTES) throw unauthenticated('signature length');

  const covered = input.items;
  if (
    covered.length !== COVERED_COMPONENTS.length ||
    covered.some((item, i) => item.value.type !== 'string' || item.value.value !== COVERED_COMPONENTS[i] || item.params.size > 0)
  ) {
    throw unauthenticated('covered components differ from the profile');
  }
  for (const key of input.params.keys()) if (!ALLOWED_PARAMS.has(key)) throw unauthenticated(`parameter ${key}`);
  const { created, expires, keyid, alg, tag } = Object.fromEntries(input.params) as Record<string, BareItem | undefined>;
  if (created?.type !== 'integer' || created.value < 0) throw unauthenticated('created');
  if (expires !== undefined && (expires.type !== 'integer' || expires.value <= created.value)) throw unauthenticated('expires');
  if (keyid?.type !== 'string' || keyid.value.length === 0 || keyid.value.length > MAX_KEYID_LENGTH) throw unauthenticated('keyid');
  if (alg?.type !== 'string' || alg.value !== SIGNATURE_ALG) throw unauthenticated('alg');
  if (tag?.type !== 'string' || tag.value !== SIGNATURE_TAG) throw unauthenticated('tag');
  return {
    keyid: keyid.value,
    created: created.value,
    expires: expires?.value,
    // §3.2: the verifier signs over the re-serialised parameters, not the bytes as received.
    signatureParams: serializeInnerList(input),
    signature: signature.value.value,
  };
}

/**
 * Authenticates a request from a peer. Throws CLOCK_SKEW (with `details.serverTime`, RFC 3339)
 * when `created` lies outside ±maxSkewSeconds of now, REQUEST_UNAUTHENTICATED for every other
 * failure, and CONTENT_DIGEST_MISMATCH when `body` is given and differs from Content-Digest.
 */
export async function verifyRequest(input: VerifyRequestInput): Promise<VerifiedRequest> {
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const maxSkew = input.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS;
  const parsed = parseSignatureFields(input.headers);

  if (Math.abs(parsed.created - now) > maxSkew) {
    throw new ProtocolError('CLOCK_SKEW', 'The signature creation time is outside the allowed clock skew', { serverTime: rfc3339(now) });
  }
  if (parsed.expires !== undefined && parsed.expires <= now) throw unauthenticated('signature expired');

  let base: string;
  try {
    base = buildSignatureBase(componentValues(input.method, input.url, input.headers), parsed.signatureParams);
  } catch (e) {
    throw unauthenticated(`signature base: ${(e as Error).message}`);
  }

  const resolved = await input.resolveKey(parsed.keyid);
  if (resolved === undefined) throw unauthenticated('unknown keyid');
  const jwk = PublicSigningJwk.safeParse(resolved);
  if (!jwk.success) throw unauthenticated('resolved key is not an Ed25519 public key');

  let valid: boolean;
  try {
    const key = await cryptoKeyFor(resolved, 'EdDSA');
    valid = await crypto.subtle.verify('Ed25519', key, parsed.signature as Uint8Array<ArrayBuffer>, new TextEncoder().encode(base));
  } catch (e) {
    throw unauthenticated(`verification error: ${(e as Error).message}`);
  }
  if (!valid) throw unauthenticated('bad signature');

  if (input.body !== undefined) verifyContentDigest(fieldValue(input.headers, 'content-digest'), input.body);
  return { keyid: parsed.keyid, created: parsed.created };
}
