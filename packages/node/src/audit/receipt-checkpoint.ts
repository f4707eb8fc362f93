/**
 * The receiver's checkpoint inside a receipt (spec/audit.md §3.2): the sender verifies it with the
 * receiver's key before it keeps the receipt, so that each side holds the other's signed
 * statement of its log state and a later audit can compare the two.
 */
import { peekCompactPayload, ProtocolError, verifyCheckpoint, type Checkpoint, type NodeKeyResolver } from '@passerelle/protocol';

/**
 * Verifies `log.checkpoint` of a receipt already verified as signed by `receiver`. Returns the
 * checkpoint, or undefined when the receipt carries none (it is optional). A checkpoint that does
 * not verify, or of another log, makes the receipt RECEIPT_INVALID: a receipt is kept whole or not
 * at all, since an auditor will check every part of it.
 */
export async function verifyReceiptCheckpoint(receipt: string, receiver: string, resolveKey: NodeKeyResolver): Promise<Checkpoint | undefined> {
  const log = (peekCompactPayload(receipt) as { log?: { checkpoint?: unknown } }).log;
  if (log?.checkpoint === undefined) return undefined;
  if (typeof log.checkpoint !== 'string') throw new ProtocolError('RECEIPT_INVALID', 'The receipt carries a malformed checkpoint');
  try {
    return await verifyCheckpoint(log.checkpoint, resolveKey, { origin: receiver });
  } catch (e) {
    const reason = e instanceof ProtocolError ? e.code : 'INTERNAL';
    throw new ProtocolError('RECEIPT_INVALID', "The checkpoint in the receipt does not verify with the receiver's key", { reason }, { cause: e });
  }
}
