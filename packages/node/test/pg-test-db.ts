/**
 * A fresh PostgreSQL database for one test file, dropped when the file is done.
 *
 * - `PASSERELLE_TEST_PG`: admin connection URL (a role allowed to CREATE DATABASE). Default
 *   `postgres://postgres@127.0.0.1:5432/test`.
 * - `PASSERELLE_SKIP_PG=1`: the PostgreSQL suites are reported as skipped. Without it, an
 *   unreachable server fails every PostgreSQL test with a message saying what to do: a test run
 *   that silently skipped the shared-database store would prove nothing about it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
import { Client, Pool } from 'pg';
import type { QueryResult, QueryResultRow } from 'pg';

export const PG_ADMIN_URL = process.env['PASSERELLE_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/test';
export const SKIP_PG = process.env['PASSERELLE_SKIP_PG'] === '1';

export interface TestDatabase {
  name: string;
  /** Connection URL of the fresh database. */
  url: string;
  /** A schema name not used before in this run (the store creates it on migration). */
  freshSchema(prefix?: string): string;
  /** Runs SQL on the fresh database outside any store (inspection, sabotage, cleanup). */
  sql<R extends QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
  /** Closes the helper's connections and drops the database. */
  drop(): Promise<void>;
}

function redacted(url: string): string {
  return url.replace(/(:\/\/[^:/?#@]*:)[^@/?#]*@/, '$1***@');
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function adminClient(): Promise<Client> {
  const client = new Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    const reason = error instanceof Error ? error.message || error.name : String(error);
    throw new Error(
      `PostgreSQL is not reachable at ${redacted(PG_ADMIN_URL)} (${reason}). The PostgreSQL store tests need a server: ` +
        'start one, point PASSERELLE_TEST_PG at an admin connection URL, or set PASSERELLE_SKIP_PG=1 to skip these tests.',
      { cause: error },
    );
  }
  return client;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `passerelle_test_${randomBytes(6).toString('hex')}`;
  const admin = await adminClient();
  try {
    await admin.query(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(PG_ADMIN_URL, name);
  const pool = new Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined);
  let schemas = 0;
  let dropped = false;
  return {
    name,
    url,
    freshSchema: (prefix = 's') => {
      schemas += 1;
      return `${prefix}_${schemas}_${randomBytes(3).toString('hex')}`;
    },
    sql: <R extends QueryResultRow>(text: string, values?: unknown[]) => pool.query<R>(text, values),
    drop: async () => {
      if (dropped) return;
      dropped = true;
      await pool.end();
      const client = await adminClient();
      try {
        // FORCE ends connections a failed test left open (PostgreSQL 13+).
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** `describe`, or `describe.skip` (reported as skipped) when PASSERELLE_SKIP_PG=1. */
export function describePostgres(name: string, body: () => void): void {
  (SKIP_PG ? describe.skip : describe)(name, body);
}

/**
 * Creates the database before the enclosing suite and drops it after. Read `current()` inside tests
 * and hooks, not while the suite is being collected.
 */
export function useTestDatabase(): { current: () => TestDatabase } {
  let database: TestDatabase | undefined;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });
  return {
    current: () => {
      if (!database) throw new Error('The test database is not ready (PostgreSQL unreachable?)');
      return database;
    },
  };
}
