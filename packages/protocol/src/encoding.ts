/** Isomorphic byte helpers (no node:* imports; Web APIs only). */
import { ProtocolError } from './errors.js';
import { sha256NativeB64u, sha256Sync, sha256Text } from './sha256.js';

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the text, as Node's decoder does: both paths must give the same
// text (a JSON text starting with a BOM is then refused everywhere, RFC 8259 §8.1).
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  if (NodeBuffer) return nodeBufferText(NodeBuffer.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength));
  return strictUtf8(bytes);
}

/**
 * Node's decoder is several times faster but lenient (invalid sequences become U+FFFD): the strict
 * one is needed only when a replacement character shows up, to tell a genuine one.
 */
function nodeBufferText(buf: Uint8Array & { toString(encoding: string): string }): string {
  const text = buf.toString('utf8');
  return text.includes('\uFFFD') ? strictUtf8(buf) : text;
}

function strictUtf8(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new ProtocolError('MALFORMED', 'Invalid UTF-8');
  }
}

const B64URL = /^[A-Za-z0-9_-]*$/;

// Node's Buffer, when present, is an order of magnitude faster than btoa/atob for large inputs;
// the fallback keeps the package usable in browsers.
interface BufferLike {
  from(data: Uint8Array | string, encoding?: string): Uint8Array & { toString(encoding: string): string };
  from(data: ArrayBuffer, byteOffset: number, length: number): Uint8Array & { toString(encoding: string): string };
}
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

export function b64u(bytes: Uint8Array): string {
  if (NodeBuffer) {
    return NodeBuffer.from(bytes.buffer instanceof ArrayBuffer ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes).toString('base64url');
  }
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** base64url of the UTF-8 encoding of `text`, without an intermediate byte array on Node. */
export function b64uText(text: string): string {
  if (NodeBuffer) return NodeBuffer.from(text, 'utf8').toString('base64url');
  return b64u(utf8(text));
}

/**
 * Checks strict base64url (RFC 7515 §2) without decoding: no padding, no other alphabet, and no
 * stray bits in the last character, so that one byte string has one serialisation.
 */
export function isStrictB64u(text: string): boolean {
  if (typeof text !== 'string' || text.length % 4 === 1 || !B64URL.test(text)) return false;
  const rem = text.length % 4;
  if (rem === 0) return true;
  const last = B64URL_ALPHABET.indexOf(text[text.length - 1]!);
  return rem === 2 ? (last & 0x0f) === 0 : (last & 0x03) === 0;
}

/** Strict base64url decoding (RFC 7515 §2): no padding, no other alphabet, canonical trailing bits. */
export function fromB64u(text: string): Uint8Array {
  const bytes = decodeCanonicalB64u(text);
  if (bytes) return bytes;
  throw new ProtocolError('MALFORMED', typeof text === 'string' && B64URL.test(text) && text.length % 4 !== 1 ? 'Non-canonical base64url' : 'Invalid base64url');
}

/** Strict base64url of strict UTF-8 to text (disclosures): MALFORMED on either failing. */
export function fromB64uText(text: string): string {
  if (NodeBuffer && typeof text === 'string') {
    // One Buffer for both steps: this runs once per disclosure.
    const buf = NodeBuffer.from(text, 'base64url');
    if (buf.toString('base64url') !== text) fromB64u(text); // throws the precise error
    return nodeBufferText(buf);
  }
  return fromUtf8(fromB64u(text));
}

/**
 * Decodes strict base64url, or returns undefined. On Node the text is decoded and encoded back: text
 * is canonical exactly when it round-trips, which for long input (ciphertexts) is several times
 * cheaper than matching the alphabet with a regular expression first.
 */
export function decodeCanonicalB64u(text: string): Uint8Array | undefined {
  if (typeof text !== 'string') return undefined;
  if (NodeBuffer) {
    const buf = NodeBuffer.from(text, 'base64url');
    return buf.toString('base64url') === text ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : undefined;
  }
  if (!isStrictB64u(text)) return undefined;
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function b64uJson(value: unknown): string {
  return b64uText(JSON.stringify(value));
}

export const MAX_JSON_DEPTH = 32;

/**
 * JSON.parse with a nesting bound. V8's JSON.parse is iterative, so hostile nesting cannot exhaust
 * the stack while parsing; the bound protects whatever walks the result afterwards. Checking the
 * parsed value is cheaper than scanning the text first; on invalid JSON the text is scanned so that
 * over-deep input is TOO_LARGE whether or not it is also malformed.
 */
export function parseJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    if (textDepthExceeds(text)) throw new ProtocolError('TOO_LARGE', 'JSON nested too deeply');
    throw new ProtocolError('MALFORMED', 'Invalid JSON');
  }
  if (!withinDepth(value, 1)) throw new ProtocolError('TOO_LARGE', 'JSON nested too deeply');
  return value;
}

/** True when `value` (an object or array counting as depth `depth`) nests no deeper than the bound. */
function withinDepth(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (depth > MAX_JSON_DEPTH) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (item !== null && typeof item === 'object' && !withinDepth(item, depth + 1)) return false;
    return true;
  }
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== null && typeof item === 'object' && !withinDepth(item, depth + 1)) return false;
  }
  return true;
}

function textDepthExceeds(text: string): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

export function parseJsonObject(text: string): Record<string, unknown> {
  const value = parseJson(text);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError('MALFORMED', 'Expected a JSON object');
  }
  return value as Record<string, unknown>;
}

export async function sha256(data: Uint8Array | string): Promise<Uint8Array> {
  const bytes = typeof data === 'string' ? utf8(data) : data;
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
}

/** base64url(SHA-256(data)): the digest form used throughout the protocol. */
export async function sha256b64u(data: Uint8Array | string): Promise<string> {
  return b64u(await sha256(data));
}

/**
 * base64url(SHA-256(UTF-8(text))), the digest form of disclosures and envelopes. Node's one-shot hash
 * takes the string and returns base64url directly, about half a microsecond for a disclosure,
 * several times cheaper than hashing in JavaScript and encoding separately.
 */
export const sha256b64uText: (text: string) => string = sha256NativeB64u ?? ((text) => b64u(sha256Text(text)));

/** Synchronous form of sha256b64u, for hot paths where a thread-pool round trip costs more than the hash. */
export function sha256b64uSync(data: Uint8Array | string): string {
  return typeof data === 'string' ? sha256b64uText(data) : b64u(sha256Sync(data));
}

// Salts are drawn from a pool refilled from the CSPRNG: one getRandomValues call per 4 KiB instead of
// one per disclosure, which otherwise costs more than hashing the disclosure.
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;

export function randomBytes(byteLength: number): Uint8Array {
  if (byteLength > POOL_SIZE / 4) return crypto.getRandomValues(new Uint8Array(byteLength));
  if (poolOffset + byteLength > POOL_SIZE) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  const out = pool.slice(poolOffset, poolOffset + byteLength);
  // Each byte is handed out once; zero it so no later reader can see it in the pool.
  pool.fill(0, poolOffset, poolOffset + byteLength);
  poolOffset += byteLength;
  return out;
}

export function randomB64u(byteLength: number): string {
  return b64u(randomBytes(byteLength));
}

export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
