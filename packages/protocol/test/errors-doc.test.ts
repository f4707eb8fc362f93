/**
 * spec/errors.md and the code must not drift (after fastify's test/internals/errors.test.js): the
 * table lists every code of ERROR_CODES, in the same order, with the same meaning and the same
 * HTTP status as HTTP_STATUS.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, errorCodes, type ErrorCode } from '../src/errors.js';
import { HTTP_STATUS, httpStatusOf } from '../src/error-status.js';

const doc = readFileSync(new URL('../../../spec/errors.md', import.meta.url), 'utf8');

interface Row {
  code: string;
  meaning: string;
  status: number;
}

/** Rows of the first table whose header is `| code | meaning | HTTP status |`. */
function parseTable(markdown: string): Row[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^\|\s*code\s*\|\s*meaning\s*\|\s*HTTP status\s*\|\s*$/.test(l));
  expect(start, 'table header `| code | meaning | HTTP status |` not found').toBeGreaterThanOrEqual(0);
  expect(lines[start + 1]).toMatch(/^\|(\s*:?-+:?\s*\|){3}\s*$/);
  const rows: Row[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    // Split on unescaped pipes only; a meaning may contain `\|`.
    const cells = line
      .slice(1, line.endsWith('|') ? -1 : undefined)
      .split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, '|'));
    expect(cells, `malformed row: ${line}`).toHaveLength(3);
    const [code, meaning, status] = cells as [string, string, string];
    rows.push({ code: code.replace(/^`|`$/g, ''), meaning, status: Number(status) });
  }
  return rows;
}

describe('spec/errors.md', () => {
  const rows = parseTable(doc);

  it('lists every error code, in the order of ERROR_CODES', () => {
    expect(rows.map((r) => r.code)).toEqual(errorCodes);
  });

  it('gives each code the meaning it has in errors.ts', () => {
    for (const row of rows) expect(row.meaning, row.code).toBe(ERROR_CODES[row.code as ErrorCode]);
  });

  it('gives each code the HTTP status of HTTP_STATUS', () => {
    for (const row of rows) expect(row.status, row.code).toBe(HTTP_STATUS[row.code as ErrorCode]);
  });

  it('maps every code to a status that is an error status', () => {
    expect(Object.keys(HTTP_STATUS)).toEqual(errorCodes);
    for (const code of errorCodes) {
      const status = httpStatusOf(code);
      expect(Number.isInteger(status) && status >= 400 && status <= 599, code).toBe(true);
    }
  });

  it('mentions no code that does not exist', () => {
    const mentioned = new Set([...doc.matchAll(/`([A-Z][A-Z0-9_]{2,})`/g)].map((m) => m[1]!));
    // Identifiers of the code that the prose names and that are not error codes.
    const other = new Set(['HTTP_STATUS']);
    const unknown = [...mentioned].filter((c) => !Object.hasOwn(ERROR_CODES, c) && !other.has(c));
    expect(unknown).toEqual([]);
  });
});
