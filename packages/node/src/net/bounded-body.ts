/** Reading a peer's answer with a hard size cap: a hostile peer cannot make us buffer without bound. */
import { ProtocolError } from '@passerelle/protocol';

export async function readBounded(body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => unknown }, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy?.();
      throw new ProtocolError('PEER_RESPONSE_INVALID', 'The peer answered with a body larger than allowed');
    }
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
