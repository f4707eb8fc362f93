/**
 * Fetches a pinned peer's node document from its well-known URL (spec/node.md §3): through the
 * guarded dispatcher, never following redirects, with a size cap and a timeout.
 */
import { request, type Dispatcher } from 'undici';
import { parseJson, ProtocolError } from '@passerelle/protocol';
import { assertPublicDestination, type HostLookup } from '../net/address-guard.js';
import { readBounded } from '../net/bounded-body.js';

export const NODE_DOCUMENT_PATH = '/.well-known/passerelle/node';

export interface FetchOptions {
  dispatcher: Dispatcher;
  allowPrivate: boolean;
  /** The resolver the dispatcher uses too (tests inject one). */
  lookup?: HostLookup | undefined;
  timeoutMs: number;
  maxBytes: number;
}

export type DocumentFetcher = (nodeId: string) => Promise<unknown>;

export function createDocumentFetcher(options: FetchOptions): DocumentFetcher {
  return async (nodeId) => {
    const url = `${nodeId}${NODE_DOCUMENT_PATH}`;
    await assertPublicDestination(url, { allowPrivate: options.allowPrivate, ...(options.lookup ? { lookup: options.lookup } : {}) });
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'GET',
        dispatcher: options.dispatcher,
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (e) {
      if (e instanceof ProtocolError) throw e;
      throw new ProtocolError('PEER_UNREACHABLE', 'The peer\'s node document could not be fetched', { nodeId }, { cause: e });
    }
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => undefined);
      throw new ProtocolError('PEER_RESPONSE_INVALID', `The peer answered ${res.statusCode} for its node document`, { nodeId, status: res.statusCode });
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBounded(res.body, options.maxBytes);
    } catch (e) {
      // A peer that stops mid-answer, or trickles it past the timeout, is unreachable like one that never answers.
      if (e instanceof ProtocolError) throw e;
      throw new ProtocolError('PEER_UNREACHABLE', 'The peer\'s node document could not be read', { nodeId }, { cause: e });
    }
    try {
      return parseJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (e) {
      throw new ProtocolError('PEER_RESPONSE_INVALID', 'The peer\'s node document is not JSON', { nodeId }, { cause: e });
    }
  };
}
