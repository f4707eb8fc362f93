/**
 * A fresh PostgreSQL database for one benchmark setup, dropped afterwards. The admin URL comes from
 * PASSERELLE_BENCH_PG, else PASSERELLE_TEST_PG (the test suites' variable), else the local server
 * with trust authentication.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export const PG_ADMIN_URL = process.env['PASSERELLE_BENCH_PG'] ?? process.env['PASSERELLE_TEST_PG'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchDatabase {
  /** Connection URL of the fresh database (add `?schema=` per node). */
  url: string;
  /** The store URL of one node: its own schema in this database. */
  storeUrl(schema: string): string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new Error(`PostgreSQL is not reachable at ${new URL(PG_ADMIN_URL).host} (set PASSERELLE_BENCH_PG to an admin connection URL)`, { cause: error });
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createBenchDatabase(): Promise<BenchDatabase> {
  const name = `passerelle_bench_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`));
  const parsed = new URL(PG_ADMIN_URL);
  parsed.pathname = `/${name}`;
  const url = parsed.toString();
  return {
    url,
    storeUrl: (schema) => {
      const u = new URL(url);
      u.searchParams.set('schema', schema);
      return u.toString();
    },
    drop: () => admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
}
