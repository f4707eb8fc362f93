/**
 * Receipts signed on the calling thread with node:crypto, for the one signature a node makes while
 * it holds its store's write transaction (acceptInbound: the receipt names the audit leaf it is
 * about to commit). A WebCrypto signature goes to the thread pool and comes back a turn of the
 * event loop later, behind whatever else the pool and the loop are doing: milliseconds under load,
 * during which no other write can commit. A synchronous Ed25519 signature costs tens of
 * microseconds. Ed25519 is deterministic (RFC 8032 §5.1.6), so the token is byte for byte the one
 * the SDK's signReceipt makes with the same key.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { compactSigningInput, ProtocolError, receiptPayload, RECEIPT_TYP, type PrivateJwk, type ReceiptInput, type SigningKeyPair } from '@passerelle/protocol';

/** Imported once per key; the JWK objects of a key ring live as long as the node. */
const keyObjects = new WeakMap<PrivateJwk, KeyObject>();

function keyObjectFor(jwk: PrivateJwk): KeyObject {
  let key = keyObjects.get(jwk);
  if (!key) {
    try {
      key = createPrivateKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d }, format: 'jwk' });
    } catch (e) {
      throw new ProtocolError('KEY_INVALID', 'Key cannot be imported', undefined, { cause: e });
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new ProtocolError('KEY_INVALID', 'Receipts are signed with an Ed25519 key');
    keyObjects.set(jwk, key);
  }
  return key;
}

/** signReceipt, synchronously: the same claims, header and signature. */
export function signReceiptNow(input: ReceiptInput, key: SigningKeyPair): string {
  const signingInput = compactSigningInput(receiptPayload(input), key.kid, RECEIPT_TYP);
  const signature = sign(null, Buffer.from(signingInput, 'utf8'), keyObjectFor(key.privateJwk));
  return `${signingInput}.${signature.toString('base64url')}`;
}
