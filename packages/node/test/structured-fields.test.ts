import { describe, expect, it } from 'vitest';
import { parseDictionary, serializeDictionary, serializeInnerList, type InnerList } from '../src/http/structured-fields.js';

const parse = (input: string) => parseDictionary(input, 4096);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('parseDictionary (RFC 8941 §4.2.2)', () => {
  it('parses every bare item type with parameters', () => {
    const dict = parse('a=1, b=-2.5;x, c="q\\"\\\\", d=tok/en:1, e=:AQID:, f=?0, g;p=?1, h=("x" y);n=3');
    expect(dict.get('a')).toEqual({ kind: 'item', value: { type: 'integer', value: 1 }, params: new Map() });
    expect(dict.get('b')).toEqual({ kind: 'item', value: { type: 'decimal', value: -2.5 }, params: new Map([['x', { type: 'boolean', value: true }]]) });
    expect(dict.get('c')).toMatchObject({ value: { type: 'string', value: 'q"\\' } });
    expect(dict.get('d')).toMatchObject({ value: { type: 'token', value: 'tok/en:1' } });
    expect(dict.get('e')).toMatchObject({ value: { type: 'bytes', value: new Uint8Array([1, 2, 3]) } });
    expect(dict.get('f')).toMatchObject({ value: { type: 'boolean', value: false } });
    expect(dict.get('g')).toMatchObject({ value: { type: 'boolean', value: true }, params: new Map([['p', { type: 'boolean', value: true }]]) });
    const h = dict.get('h') as InnerList;
    expect(h.kind).toBe('inner-list');
    expect(h.items.map((i) => i.value)).toEqual([{ type: 'string', value: 'x' }, { type: 'token', value: 'y' }]);
    expect(h.params.get('n')).toEqual({ type: 'integer', value: 3 });
  });

  it('serialises back to the canonical form', () => {
    expect(serializeDictionary(parse('a=1,b=?1;x=?1,  c=(  "x"   y  );n=3'))).toBe('a=1, b;x, c=("x" y);n=3');
    expect(serializeInnerList(parse('s=("@method" "@path");created=1;keyid="k"').get('s') as InnerList)).toBe('("@method" "@path");created=1;keyid="k"');
  });

  it('accepts the integer and decimal bounds', () => {
    expect(parse('a=999999999999999').get('a')).toMatchObject({ value: { type: 'integer', value: 999_999_999_999_999 } });
    expect(parse('a=-999999999999.999').get('a')).toMatchObject({ value: { type: 'decimal', value: -999999999999.999 } });
    expect(parse('').size).toBe(0);
  });

  it.each([
    ['A=1', 'upper-case key'],
    ['1a=1', 'key starting with a digit'],
    ['a=1,', 'trailing comma'],
    ['a=1,,b=2', 'empty member'],
    ['a=1 b=2', 'missing comma'],
    ['a=1, a=2', 'duplicate key'],
    ['a=1;p;p', 'duplicate parameter'],
    ['a=1000000000000000', 'integer over 15 digits'],
    ['a=1234567890123.1', 'decimal integer part over 12 digits'],
    ['a=1.1234', 'decimal fraction over 3 digits'],
    ['a=1.', 'decimal without fraction'],
    ['a=-', 'lone minus'],
    ['a="unterminated', 'unterminated string'],
    ['a="bad\\n"', 'invalid escape'],
    ['a="tab\there"', 'control character in string'],
    ['a=:AQID', 'unterminated byte sequence'],
    ['a=:AQI:', 'unpadded byte sequence'],
    ['a=?2', 'invalid boolean'],
    ['a=("x""y")', 'inner list items without separator'],
    ['a=("x"', 'unterminated inner list'],
    ['a=@', 'invalid bare item'],
    ['\ta=1', 'leading tab'],
    ['a="é"', 'non-ASCII'],
  ])('rejects %s (%s)', (input) => {
    expect(codeOf(() => parse(input))).toBe('MALFORMED');
  });

  it('bounds the input length before parsing', () => {
    expect(codeOf(() => parseDictionary(`a="${'x'.repeat(100)}"`, 50))).toBe('TOO_LARGE');
  });
});
