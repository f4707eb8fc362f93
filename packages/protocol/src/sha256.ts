/**
 * Synchronous SHA-256 (FIPS 180-4 §6.2). The protocol hashes many short strings per message
 * (one per selectively disclosable field, RFC 9901 §4.2.3); WebCrypto's digest is asynchronous and
 * costs a thread-pool round trip per call, which dominated seal/open time for small inputs.
 * Cross-checked against WebCrypto and the NIST examples in test/sha256.test.ts.
 */

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const W = new Uint32Array(64);

const H = new Int32Array(8);

function compress(block: Uint8Array, off: number): void {
  for (let t = 0; t < 16; t++, off += 4) {
    W[t] = (block[off]! << 24) | (block[off + 1]! << 16) | (block[off + 2]! << 8) | block[off + 3]!;
  }
  for (let t = 16; t < 64; t++) {
    const w15 = W[t - 15]!;
    const w2 = W[t - 2]!;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[t] = (W[t - 16]! + s0 + W[t - 7]! + s1) | 0;
  }
  let a = H[0]!, b = H[1]!, c = H[2]!, d = H[3]!, e = H[4]!, f = H[5]!, g = H[6]!, h = H[7]!;
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[t]! + W[t]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  H[0] = H[0]! + a; H[1] = H[1]! + b; H[2] = H[2]! + c; H[3] = H[3]! + d;
  H[4] = H[4]! + e; H[5] = H[5]! + f; H[6] = H[6]! + g; H[7] = H[7]! + h;
}

const tail = new Uint8Array(128);

/** Portable implementation, used where the platform offers no synchronous native hash (browsers). */
export function sha256Js(data: Uint8Array): Uint8Array {
  H.set(IV);
  const full = data.length - (data.length % 64);
  for (let off = 0; off < full; off += 64) compress(data, off);
  // Padding (FIPS 180-4 §5.1.1): 0x80, zeros, 64-bit big-endian bit length; one or two final blocks.
  const rest = data.length - full;
  const tailLength = rest + 9 > 64 ? 128 : 64;
  tail.fill(0);
  tail.set(data.subarray(full));
  tail[rest] = 0x80;
  const bits = data.length * 8;
  const hi = Math.floor(bits / 0x100000000);
  const lo = bits >>> 0;
  for (let i = 0; i < 4; i++) {
    tail[tailLength - 8 + i] = (hi >>> (24 - 8 * i)) & 0xff;
    tail[tailLength - 4 + i] = (lo >>> (24 - 8 * i)) & 0xff;
  }
  compress(tail, 0);
  if (tailLength === 128) compress(tail, 64);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const v = H[i]!;
    out[i * 4] = v >>> 24;
    out[i * 4 + 1] = (v >>> 16) & 0xff;
    out[i * 4 + 2] = (v >>> 8) & 0xff;
    out[i * 4 + 3] = v & 0xff;
  }
  return out;
}

interface NativeHash {
  createHash(alg: 'sha256'): { update(data: Uint8Array | string, encoding?: 'utf8'): { digest(): Uint8Array } };
  /** One-shot hash (Node ≥ 21.7): no hash object, and the output encoded natively. */
  hash?(alg: 'sha256', data: string, outputEncoding: 'base64url'): string;
}
// Feature detection rather than an import keeps the package isomorphic: on Node the native hash is
// several times faster than the portable one for large inputs (whole envelopes), while for short
// inputs (disclosures, Merkle nodes) the call overhead makes the portable one faster.
const NATIVE_THRESHOLD = 512;
const native = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as NativeHash | undefined;

export const sha256Sync: (data: Uint8Array) => Uint8Array = native
  ? (data) => {
      if (data.length < NATIVE_THRESHOLD) return sha256Js(data);
      const d = native.createHash('sha256').update(data).digest();
      return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    }
  : sha256Js;

const textEncoder = new TextEncoder();
let scratch = new Uint8Array(1024);

/**
 * SHA-256 of the UTF-8 encoding of `text` (disclosures, compact serialisations). Short text is
 * encoded into a reused buffer instead of a fresh array per call; long text goes straight to the
 * native hash, which encodes it itself.
 */
export function sha256Text(text: string): Uint8Array {
  if (native && text.length >= NATIVE_THRESHOLD) {
    const d = native.createHash('sha256').update(text, 'utf8').digest();
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  }
  // UTF-8 needs at most three bytes per UTF-16 code unit.
  if (scratch.length < text.length * 3) scratch = new Uint8Array(text.length * 3);
  const { written } = textEncoder.encodeInto(text, scratch);
  return sha256Js(scratch.subarray(0, written));
}

/**
 * Node's one-shot hash of a string straight to base64url (used by sha256b64uText in encoding.ts),
 * or undefined where the platform has none.
 */
export const sha256NativeB64u: ((text: string) => string) | undefined = native?.hash
  ? (text) => native.hash!('sha256', text, 'base64url')
  : undefined;
