/**
 * The raw crypto limit a node is compared with: for each message, what any implementation of the
 * protocol must do at the least — sign and encrypt it (seal), decrypt and verify it (open), sign
 * the receipt and verify the receipt — with jose alone, on payloads of exactly the sizes the node
 * produced, with the same number of messages in flight, in the same process.
 *
 * jose is a dependency of @passerelle/protocol, not of the node; it is loaded from there rather
 * than added to the node's dependencies for a benchmark.
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cryptoKeyFor, fromB64u, generateEncryptionKey, generateSigningKey, utf8 } from '@passerelle/protocol';

/** The few jose entry points used here (jose's own types are not resolvable from this package). */
interface JoseSubset {
  CompactSign: new (payload: Uint8Array) => {
    setProtectedHeader(header: Record<string, unknown>): { sign(key: CryptoKey): Promise<string> };
  };
  CompactEncrypt: new (plaintext: Uint8Array) => {
    setProtectedHeader(header: Record<string, unknown>): { encrypt(key: CryptoKey): Promise<string> };
  };
  compactDecrypt(jwe: string, key: CryptoKey): Promise<{ plaintext: Uint8Array }>;
  compactVerify(jws: string, key: CryptoKey): Promise<{ payload: Uint8Array }>;
}

async function loadJose(): Promise<JoseSubset> {
  const protocolManifest = fileURLToPath(new URL('../../../protocol/package.json', import.meta.url));
  const entry = createRequire(protocolManifest).resolve('jose');
  return (await import(pathToFileURL(entry).href)) as JoseSubset;
}

/** Sizes taken from one message the node really sent (its outbox and the peer's inbox entries). */
export interface PipelineSizes {
  /** The issuer-signed JWT (compact JWS) of the message. */
  jwt: string;
  /** The SD-JWT (JWT plus disclosures) that the JWE carries. */
  sdJwt: string;
  /** The receipt (compact JWS). */
  receipt: string;
}

export interface RawPipeline {
  /** Runs `messages` pipelines with `concurrency` in flight; returns messages per second. */
  run(messages: number, concurrency: number): Promise<number>;
}

function payloadBytes(compactJws: string): number {
  return fromB64u(compactJws.split('.')[1]!).length;
}

export interface RawPipelineOptions {
  /**
   * Also what the node must do around the message on the wire (spec/node.md §2.2): the SHA-256
   * Content-Digest of the JWE, made by the sender and checked by the receiver, and the Ed25519
   * HTTP message signature (RFC 9421) over a signature base of the node's size, signed and
   * verified. Not part of the target's limit; printed beside it.
   */
  transport?: boolean;
}

/** About the size of the node's signature base (method, target URI, content-digest, content-type, sender, params). */
const SIGNATURE_BASE_BYTES = 420;

export async function rawPipeline(sizes: PipelineSizes, options: RawPipelineOptions = {}): Promise<RawPipeline> {
  const jose = await loadJose();
  const sender = await generateSigningKey();
  const receiver = await generateSigningKey();
  const recipientEnc = await generateEncryptionKey();
  const senderPriv = await cryptoKeyFor(sender.privateJwk, 'EdDSA');
  const senderPub = await cryptoKeyFor(sender.publicJwk, 'EdDSA');
  const receiverPriv = await cryptoKeyFor(receiver.privateJwk, 'EdDSA');
  const receiverPub = await cryptoKeyFor(receiver.publicJwk, 'EdDSA');
  const encPub = await cryptoKeyFor(recipientEnc.publicJwk, 'ECDH-ES+A256KW');
  const encPriv = await cryptoKeyFor(recipientEnc.privateJwk, 'ECDH-ES+A256KW');

  const messagePayload = utf8('x'.repeat(payloadBytes(sizes.jwt)));
  const disclosures = '~'.repeat(Math.max(0, sizes.sdJwt.length - sizes.jwt.length));
  const receiptPayload = utf8('r'.repeat(payloadBytes(sizes.receipt)));
  const decoder = new TextDecoder();

  const signatureBase = utf8('b'.repeat(SIGNATURE_BASE_BYTES));
  const digestOf = async (jwe: string): Promise<ArrayBuffer> => crypto.subtle.digest('SHA-256', utf8(jwe) as Uint8Array<ArrayBuffer>);
  const transport = async (jwe: string): Promise<void> => {
    await digestOf(jwe);
    const signature = await crypto.subtle.sign('Ed25519', senderPriv, signatureBase as Uint8Array<ArrayBuffer>);
    await digestOf(jwe);
    if (!(await crypto.subtle.verify('Ed25519', senderPub, signature, signatureBase as Uint8Array<ArrayBuffer>))) throw new Error('request signature');
  };

  const one = async (): Promise<void> => {
    const jws = await new jose.CompactSign(messagePayload).setProtectedHeader({ alg: 'EdDSA', typ: 'm', kid: sender.kid }).sign(senderPriv);
    const jwe = await new jose.CompactEncrypt(utf8(jws + disclosures))
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: recipientEnc.kid })
      .encrypt(encPub);
    if (options.transport) await transport(jwe);
    const { plaintext } = await jose.compactDecrypt(jwe, encPriv);
    const text = decoder.decode(plaintext);
    await jose.compactVerify(text.slice(0, text.indexOf('~')), senderPub);
    const receipt = await new jose.CompactSign(receiptPayload).setProtectedHeader({ alg: 'EdDSA', typ: 'r', kid: receiver.kid }).sign(receiverPriv);
    await jose.compactVerify(receipt, receiverPub);
  };

  return {
    async run(messages, concurrency) {
      let next = 0;
      const lane = async () => {
        while (next++ < messages) await one();
      };
      const start = performance.now();
      await Promise.all(Array.from({ length: concurrency }, lane));
      return messages / ((performance.now() - start) / 1000);
    },
  };
}
