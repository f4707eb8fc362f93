/**
 * Signed POSTs to a peer (spec/node.md §2): Content-Digest (RFC 9530) and an HTTP message
 * signature (RFC 9421) on every request, through the guarded dispatcher, no redirects followed,
 * the answer read with a size cap.
 */
import { request, type Dispatcher } from 'undici';
import { ProtocolError, type SigningKeyPair } from '@passerelle/protocol';
import { contentDigest } from '../http/content-digest.js';
import { signRequest } from '../http/message-signatures.js';
import { assertPublicDestination, type HostLookup } from './address-guard.js';
import { readBounded } from './bounded-body.js';

/** Names the sender so a receiver can refresh that pinned peer's document on an unknown keyid; never trusted on its own. */
export const SENDER_HEADER = 'passerelle-sender';
export const JOSE_CONTENT_TYPE = 'application/jose';

export interface PeerClientOptions {
  dispatcher: Dispatcher;
  allowPrivate: boolean;
  /** The resolver the dispatcher uses too (tests inject one). */
  lookup?: HostLookup | undefined;
  timeoutMs: number;
  maxResponseBytes: number;
}

export interface PeerResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
}

export async function postSigned(
  options: PeerClientOptions,
  input: { url: string; body: Uint8Array; contentType: string; key: SigningKeyPair; sender: string },
): Promise<PeerResponse> {
  await assertPublicDestination(input.url, { allowPrivate: options.allowPrivate, ...(options.lookup ? { lookup: options.lookup } : {}) });
  const headers: Record<string, string> = {
    'content-type': input.contentType,
    'content-digest': contentDigest(input.body),
    accept: 'application/json, application/problem+json',
    [SENDER_HEADER]: input.sender,
  };
  const signature = await signRequest({ method: 'POST', url: input.url, headers, key: input.key });
  let res: Dispatcher.ResponseData;
  try {
    res = await request(input.url, {
      method: 'POST',
      dispatcher: options.dispatcher,
      headers: { ...headers, ...signature },
      body: input.body,
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('PEER_UNREACHABLE', 'The peer could not be reached', undefined, { cause: e });
  }
  let body: Uint8Array;
  try {
    body = await readBounded(res.body, options.maxResponseBytes);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('PEER_UNREACHABLE', 'The connection failed while reading the answer', undefined, { cause: e });
  }
  return { status: res.statusCode, headers: res.headers, body };
}
