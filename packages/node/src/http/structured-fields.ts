/**
 * Structured Field Values for HTTP (RFC 8941): the dictionary, inner-list and item subset that
 * Content-Digest (RFC 9530) and HTTP Message Signatures (RFC 9421) are built on.
 *
 * Parsing follows RFC 8941 §4.2 with two deliberate tightenings, because these fields carry
 * security decisions and two readers must never see two different values:
 * - a key repeated in a dictionary or in a parameter list is refused instead of "last wins";
 * - a byte sequence must be canonical, padded base64 (§4.2.7 allows lenient decoding).
 * Every failure throws ProtocolError MALFORMED; callers map it to their own code.
 */
import { ProtocolError } from '@passerelle/protocol';

export type BareItem =
  | { type: 'integer'; value: number }
  | { type: 'decimal'; value: number }
  | { type: 'string'; value: string }
  | { type: 'token'; value: string }
  | { type: 'bytes'; value: Uint8Array }
  | { type: 'boolean'; value: boolean };

export type Parameters = Map<string, BareItem>;

export interface Item {
  kind: 'item';
  value: BareItem;
  params: Parameters;
}

export interface InnerList {
  kind: 'inner-list';
  items: Item[];
  params: Parameters;
}

export type Dictionary = Map<string, Item | InnerList>;

const MAX_INTEGER = 999_999_999_999_999;

function fail(message: string): never {
  throw new ProtocolError('MALFORMED', `Structured field: ${message}`);
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isLcAlpha = (c: string | undefined): boolean => c !== undefined && c >= 'a' && c <= 'z';
const isAlpha = (c: string | undefined): boolean => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
// tchar (RFC 9110 §5.6.2)
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
const KEY = /^[a-z*][a-z0-9_\-.*]*$/;
const TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

class Parser {
  private pos = 0;
  constructor(private readonly input: string) {}

  private peek(): string | undefined {
    return this.input[this.pos];
  }

  private atEnd(): boolean {
    return this.pos >= this.input.length;
  }

  private skipSp(): void {
    while (this.peek() === ' ') this.pos++;
  }

  private skipOws(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  /** RFC 8941 §4.2: leading and trailing SP are discarded, anything else left over fails. */
  parseDictionaryField(): Dictionary {
    this.skipSp();
    const dict = this.parseDictionary();
    this.skipSp();
    if (!this.atEnd()) fail('trailing characters');
    return dict;
  }

  // §4.2.2
  private parseDictionary(): Dictionary {
    const dict: Dictionary = new Map();
    while (!this.atEnd()) {
      const key = this.parseKey();
      if (dict.has(key)) fail(`duplicate key "${key}"`);
      if (this.peek() === '=') {
        this.pos++;
        dict.set(key, this.parseItemOrInnerList());
      } else {
        dict.set(key, { kind: 'item', value: { type: 'boolean', value: true }, params: this.parseParameters() });
      }
      this.skipOws();
      if (this.atEnd()) return dict;
      if (this.peek() !== ',') fail('expected ","');
      this.pos++;
      this.skipOws();
      if (this.atEnd()) fail('trailing ","');
    }
    return dict;
  }

  private parseItemOrInnerList(): Item | InnerList {
    return this.peek() === '(' ? this.parseInnerList() : this.parseItem();
  }

  // §4.2.1.2
  private parseInnerList(): InnerList {
    this.pos++;
    const items: Item[] = [];
    while (!this.atEnd()) {
      this.skipSp();
      if (this.peek() === ')') {
        this.pos++;
        return { kind: 'inner-list', items, params: this.parseParameters() };
      }
      items.push(this.parseItem());
      const c = this.peek();
      if (c !== ' ' && c !== ')') fail('expected SP or ")" in inner list');
    }
    return fail('unterminated inner list');
  }

  // §4.2.3
  private parseItem(): Item {
    const value = this.parseBareItem();
    return { kind: 'item', value, params: this.parseParameters() };
  }

  // §4.2.3.2
  private parseParameters(): Parameters {
    const params: Parameters = new Map();
    while (this.peek() === ';') {
      this.pos++;
      this.skipSp();
      const key = this.parseKey();
      if (params.has(key)) fail(`duplicate parameter "${key}"`);
      let value: BareItem = { type: 'boolean', value: true };
      if (this.peek() === '=') {
        this.pos++;
        value = this.parseBareItem();
      }
      params.set(key, value);
    }
    return params;
  }

  // §4.2.3.3
  private parseKey(): string {
    const first = this.peek();
    if (!isLcAlpha(first) && first !== '*') fail('invalid key');
    const start = this.pos;
    for (;;) {
      const c = this.peek();
      if (c === undefined || !(isLcAlpha(c) || isDigit(c) || c === '_' || c === '-' || c === '.' || c === '*')) break;
      this.pos++;
    }
    return this.input.slice(start, this.pos);
  }

  // §4.2.3.1
  private parseBareItem(): BareItem {
    const c = this.peek();
    if (c === '-' || isDigit(c)) return this.parseNumber();
    if (c === '"') return this.parseString();
    if (c === ':') return this.parseByteSequence();
    if (c === '?') return this.parseBoolean();
    if (isAlpha(c) || c === '*') return this.parseToken();
    return fail('invalid bare item');
  }

  // §4.2.4
  private parseNumber(): BareItem {
    let sign = 1;
    if (this.peek() === '-') {
      sign = -1;
      this.pos++;
    }
    if (!isDigit(this.peek())) fail('invalid number');
    const start = this.pos;
    let decimal = false;
    for (;;) {
      const c = this.peek();
      if (isDigit(c)) this.pos++;
      else if (c === '.' && !decimal) {
        if (this.pos - start > 12) fail('decimal integer part too long');
        decimal = true;
        this.pos++;
      } else break;
      if (!decimal && this.pos - start > 15) fail('integer too long');
      if (decimal && this.pos - start > 16) fail('decimal too long');
    }
    const text = this.input.slice(start, this.pos);
    if (!decimal) return { type: 'integer', value: sign * Number.parseInt(text, 10) };
    if (text.endsWith('.')) fail('decimal without fraction');
    if (text.length - text.indexOf('.') - 1 > 3) fail('decimal fraction too long');
    return { type: 'decimal', value: sign * Number.parseFloat(text) };
  }

  // §4.2.5
  private parseString(): BareItem {
    this.pos++;
    let out = '';
    while (!this.atEnd()) {
      const c = this.input[this.pos++]!;
      if (c === '\\') {
        const next = this.input[this.pos++];
        if (next !== '"' && next !== '\\') fail('invalid escape in string');
        out += next;
      } else if (c === '"') {
        return { type: 'string', value: out };
      } else {
        const code = c.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) fail('invalid character in string');
        out += c;
      }
    }
    return fail('unterminated string');
  }

  // §4.2.6
  private parseToken(): BareItem {
    const start = this.pos;
    this.pos++;
    for (;;) {
      const c = this.peek();
      if (c === undefined || !(TCHAR.test(c) || c === ':' || c === '/')) break;
      this.pos++;
    }
    return { type: 'token', value: this.input.slice(start, this.pos) };
  }

  // §4.2.7
  private parseByteSequence(): BareItem {
    this.pos++;
    const end = this.input.indexOf(':', this.pos);
    if (end < 0) fail('unterminated byte sequence');
    const text = this.input.slice(this.pos, end);
    this.pos = end + 1;
    return { type: 'bytes', value: decodeBase64Strict(text) };
  }

  // §4.2.8
  private parseBoolean(): BareItem {
    this.pos++;
    const c = this.peek();
    if (c !== '0' && c !== '1') fail('invalid boolean');
    this.pos++;
    return { type: 'boolean', value: c === '1' };
  }
}

function decodeBase64Strict(text: string): Uint8Array {
  if (text.length % 4 !== 0 || !BASE64.test(text)) fail('invalid base64 in byte sequence');
  const bytes = Uint8Array.from(Buffer.from(text, 'base64'));
  if (Buffer.from(bytes).toString('base64') !== text) fail('non-canonical base64 in byte sequence');
  return bytes;
}

/**
 * Parses a dictionary field value. `maxLength` bounds the work done on hostile input; the field
 * must be ASCII (RFC 8941 §4.2). Over-long input throws TOO_LARGE, bad syntax MALFORMED.
 */
export function parseDictionary(input: string, maxLength: number): Dictionary {
  if (input.length > maxLength) throw new ProtocolError('TOO_LARGE', 'Structured field too long');
  if (!/^[\x00-\x7f]*$/.test(input)) fail('non-ASCII input');
  return new Parser(input).parseDictionaryField();
}

// Serialisation, RFC 8941 §4.1. Throws MALFORMED on values the grammar cannot carry.

export function serializeKey(key: string): string {
  if (!KEY.test(key)) fail(`cannot serialise key "${key}"`);
  return key;
}

export function serializeBareItem(item: BareItem): string {
  switch (item.type) {
    case 'integer':
      if (!Number.isInteger(item.value) || Math.abs(item.value) > MAX_INTEGER) fail('integer out of range');
      return String(item.value);
    case 'decimal': {
      const rounded = Math.round(item.value * 1000) / 1000;
      if (!Number.isFinite(rounded) || Math.abs(Math.trunc(rounded)) > 999_999_999_999) fail('decimal out of range');
      return Number.isInteger(rounded) ? `${rounded}.0` : String(rounded);
    }
    case 'string':
      if (!/^[\x20-\x7e]*$/.test(item.value)) fail('cannot serialise string');
      return `"${item.value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    case 'token':
      if (!TOKEN.test(item.value)) fail('cannot serialise token');
      return item.value;
    case 'bytes':
      return `:${Buffer.from(item.value).toString('base64')}:`;
    case 'boolean':
      return item.value ? '?1' : '?0';
  }
}

export function serializeParameters(params: Parameters): string {
  let out = '';
  for (const [key, value] of params) {
    out += `;${serializeKey(key)}`;
    if (!(value.type === 'boolean' && value.value)) out += `=${serializeBareItem(value)}`;
  }
  return out;
}

export function serializeItem(item: Item): string {
  return serializeBareItem(item.value) + serializeParameters(item.params);
}

export function serializeInnerList(list: InnerList): string {
  return `(${list.items.map(serializeItem).join(' ')})${serializeParameters(list.params)}`;
}

export function serializeDictionary(dict: Dictionary): string {
  const members: string[] = [];
  for (const [key, member] of dict) {
    if (member.kind === 'item' && member.value.type === 'boolean' && member.value.value) {
      members.push(serializeKey(key) + serializeParameters(member.params));
    } else {
      members.push(`${serializeKey(key)}=${member.kind === 'item' ? serializeItem(member) : serializeInnerList(member)}`);
    }
  }
  return members.join(', ');
}
