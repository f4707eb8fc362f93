/** Isomorphic byte helpers (no node:* imports; Web APIs only). */
import { ProtocolError } from './errors.js';
import { sha256Sync } from './sha256.js';

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
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

/** Strict base64url decoding (RFC 7515 §2): no padding, no other alphabet, canonical trailing bits. */
export function fromB64u(text: string): Uint8Array {
  if (typeof text !== 'string' || !B64URL.test(text) || text.length % 4 === 1) throw new ProtocolError('MALFORMED', 'Invalid base64url');
  let out: Uint8Array;
  if (NodeBuffer) {
    const buf = NodeBuffer.from(text, 'base64url');
    out = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } else {
    const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  }
  // Refuse stray bits in the last character so that one byte string has one serialisation.
  const rem = text.length % 4;
  if (rem !== 0) {
    const last = B64URL_ALPHABET.indexOf(text[text.length - 1]!);
    if ((rem === 2 && (last & 0x0f) !== 0) || (rem === 3 && (last & 0x03) !== 0)) {
      throw new ProtocolError('MALFORMED', 'Non-canonical base64url');
    }
  }
  return out;
}

const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function b64uJson(value: unknown): string {
  return b64u(utf8(JSON.stringify(value)));
}

export const MAX_JSON_DEPTH = 32;

/** JSON.parse with a nesting bound checked before parsing, so hostile input cannot exhaust the stack. */
export function parseJson(text: string): unknown {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) throw new ProtocolError('TOO_LARGE', 'JSON nested too deeply');
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ProtocolError('MALFORMED', 'Invalid JSON');
  }
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

/** Synchronous form of sha256b64u, for hot paths where a thread-pool round trip costs more than the hash. */
export function sha256b64uSync(data: Uint8Array | string): string {
  return b64u(sha256Sync(typeof data === 'string' ? utf8(data) : data));
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
