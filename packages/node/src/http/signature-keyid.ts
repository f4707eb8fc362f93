/**
 * The keyid a request claims, read from Signature-Input without any cryptography: the cheap
 * first check that lets an unknown sender be refused before the body is read or any key fetched.
 */
import { MAX_SIGNATURE_FIELD_LENGTH, SIGNATURE_LABEL } from './message-signatures.js';
import { parseDictionary } from './structured-fields.js';

export function claimedKeyid(signatureInput: string | string[] | undefined): string | undefined {
  const value = Array.isArray(signatureInput) ? signatureInput.join(', ') : signatureInput;
  if (value === undefined || value.length === 0 || value.length > MAX_SIGNATURE_FIELD_LENGTH) return undefined;
  try {
    const dict = parseDictionary(value, MAX_SIGNATURE_FIELD_LENGTH);
    const member = dict.get(SIGNATURE_LABEL) ?? (dict.size === 1 ? dict.values().next().value : undefined);
    if (member?.kind !== 'inner-list') return undefined;
    const keyid = member.params.get('keyid');
    return keyid?.type === 'string' && keyid.value.length > 0 && keyid.value.length <= 256 ? keyid.value : undefined;
  } catch {
    return undefined;
  }
}
