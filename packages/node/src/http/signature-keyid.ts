/**
 * The keyid a request claims, read from Signature-Input without any cryptography: the cheap
 * first check that lets an unknown sender be refused before the body is read or any key fetched.
 *
 * Every request of a flood goes through here, so the usual shape of the field (one signature,
 * string components, simple parameters: what every Passerelle node sends) is read with one
 * regular expression instead of the structured-field parser's maps and items. Anything else
 * goes to the parser; for the inputs the fast path accepts, the answer is the parser's
 * (test/signature-keyid.test.ts checks both on generated fields).
 */
import { MAX_SIGNATURE_FIELD_LENGTH, SIGNATURE_LABEL } from './message-signatures.js';
import { parseDictionary } from './structured-fields.js';

const KEY = '[a-z*][a-z0-9_.*-]*';
const STRING = '"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*"';
// A parameter value the fast path reads: sf-string, sf-integer, sf-token or sf-boolean (no decimals or byte sequences).
const VALUE = `(?:${STRING}|-?[0-9]{1,15}|[A-Za-z*][!#$%&'*+.^_\`|~0-9A-Za-z:/-]*|\\?[01])`;
const SIMPLE_FIELD = new RegExp(`^${KEY}=\\((?:${STRING}(?: ${STRING})*)?\\)((?:;${KEY}(?:=${VALUE})?)*)$`);
const PARAMETER = new RegExp(`;(${KEY})(?:=(${VALUE}))?`, 'g');

/** The keyid both paths accept: a non-empty string of bounded length. */
function boundedKeyid(keyid: string | undefined): string | undefined {
  return keyid !== undefined && keyid.length > 0 && keyid.length <= 256 ? keyid : undefined;
}

/** Not decided by the fast path: the structured-field parser decides. */
export const UNDECIDED = Symbol('undecided');

/** The fast path alone (exported for the test that compares it with the parser). */
export function simpleFieldKeyid(value: string): string | undefined | typeof UNDECIDED {
  const match = SIMPLE_FIELD.exec(value);
  if (!match) return UNDECIDED;
  const seen = new Set<string>();
  let keyid: string | undefined;
  for (const [, key, raw] of match[1]!.matchAll(PARAMETER)) {
    // The parser refuses a repeated parameter: so does this path, by leaving it to the parser.
    if (seen.has(key!)) return UNDECIDED;
    seen.add(key!);
    if (key === 'keyid') keyid = raw !== undefined && raw.startsWith('"') ? raw.slice(1, -1) : undefined;
  }
  return boundedKeyid(keyid);
}

/** The structured-field parser's answer (exported for the same test). */
export function parsedFieldKeyid(value: string): string | undefined {
  try {
    const dict = parseDictionary(value, MAX_SIGNATURE_FIELD_LENGTH);
    const member = dict.get(SIGNATURE_LABEL) ?? (dict.size === 1 ? dict.values().next().value : undefined);
    if (member?.kind !== 'inner-list') return undefined;
    const keyid = member.params.get('keyid');
    return keyid?.type === 'string' ? boundedKeyid(keyid.value) : undefined;
  } catch {
    return undefined;
  }
}

export function claimedKeyid(signatureInput: string | string[] | undefined): string | undefined {
  const value = Array.isArray(signatureInput) ? signatureInput.join(', ') : signatureInput;
  if (value === undefined || value.length === 0 || value.length > MAX_SIGNATURE_FIELD_LENGTH) return undefined;
  const fast = simpleFieldKeyid(value);
  return fast === UNDECIDED ? parsedFieldKeyid(value) : fast;
}
