/**
 * The committed JSON Schemas in spec/schemas must be exactly what the generator produces from the
 * zod schemas today (spec/protocol.md §1.3). On failure, run `pnpm schemas` and commit the result.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MESSAGE_TYPE_IDS } from '../src/index.js';
import { checkSchemas, generateSchemas, SCHEMA_BASE_URI, SCHEMAS_DIR } from '../scripts/generate-schemas.js';

describe('spec/schemas', () => {
  const generated = generateSchemas();

  it('has no drift from the zod schemas (run `pnpm schemas` to update)', () => {
    expect(checkSchemas()).toEqual({ changed: [], missing: [], stale: [] });
  });

  it('matches the generator file by file', () => {
    const committed = readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.schema.json')).sort();
    expect(committed).toEqual([...generated.keys()].sort());
    for (const [name, text] of generated) expect(readFileSync(`${SCHEMAS_DIR}${name}`, 'utf8'), name).toBe(text);
  });

  it('is deterministic', () => {
    expect([...generateSchemas()]).toEqual([...generated]);
  });

  it('has one SDK-form and one wire-payload schema per message type', () => {
    for (const type of MESSAGE_TYPE_IDS) {
      expect(generated.has(`${type}.schema.json`), type).toBe(true);
      expect(generated.has(`${type}.wire.schema.json`), type).toBe(true);
    }
  });

  it('writes draft 2020-12 schemas with their $id, sorted keys and a trailing newline', () => {
    for (const [name, text] of generated) {
      expect(text.endsWith('}\n'), name).toBe(true);
      const schema = JSON.parse(text) as Record<string, unknown>;
      expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(schema.$id).toBe(`${SCHEMA_BASE_URI}${name}`);
      expect(Object.keys(schema)).toEqual(Object.keys(schema).sort());
    }
  });
});
