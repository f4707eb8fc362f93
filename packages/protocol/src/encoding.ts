/** Isomorphic byte helpers (no node:* imports; Web APIs only). */
import { ProtocolError } from './errors.js';

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

export function b64u(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Strict base64url decoding (RFC 7515 §2): no padding, no other alphabet, canonical trailing bits. */
export function fromB64u(text: string): Uint8Array {
  if (!B64URL.test(text) || text.length % 4 === 1) throw new ProtocolError('MALFORMED', 'Invalid base64url');
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  if (b64u(out) !== text) throw new ProtocolError('MALFORMED', 'Non-canonical base64url');
  return out;
}

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

export function randomB64u(byteLength: number): string {
  return b64u(crypto.getRandomValues(new Uint8Array(byteLength)));
}

export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
