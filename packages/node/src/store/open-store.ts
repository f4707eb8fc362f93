/**
 * Chooses and opens the node's store from one configuration string (spec/node.md §Store):
 *
 * - `sqlite:<path>` or a bare file path → the embedded SQLite store (`sqlite::memory:` for a
 *   throw-away database; `sqlite:///abs/path` is accepted as `/abs/path`). A relative path is taken
 *   from `baseDir` (the node's data directory) when given;
 * - `postgres://…` or `postgresql://…` → the PostgreSQL store, for several instances on one
 *   database. A `schema=<name>` query parameter keeps this node's tables in their own schema.
 *
 * Environment: `PASSERELLE_STORE`, when set and non-empty in the `env` the caller passes (usually
 * `process.env`), replaces the configured value. Deployments use it to point an instance at a
 * shared database, or to keep a database password out of the configuration file. The store never
 * reads `process.env` by itself, so embedding software and tests stay in control.
 */
import { isAbsolute, resolve } from 'node:path';
import { ProtocolError } from '@passerelle/protocol';
import { openPostgresStore } from './postgres.js';
import type { PostgresStoreOptions } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { SqliteStoreOptions } from './sqlite.js';
import type { Store } from './types.js';

export const STORE_ENV_VAR = 'PASSERELLE_STORE';

export type StoreSpec = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

export interface OpenStoreOptions {
  /** Where to look for PASSERELLE_STORE (pass `process.env` to honour it); nothing is read otherwise. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Directory that relative SQLite paths are taken from (default: the process's working directory). */
  baseDir?: string;
  sqlite?: SqliteStoreOptions;
  postgres?: PostgresStoreOptions;
}

const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;
const SQLITE_PREFIX = /^sqlite:/i;
/** Any other `scheme://` is a mistake to report, not a file name to create. */
const OTHER_URL = /^[a-z][a-z0-9+.-]*:\/\//i;

/** The configured value, unless the environment given overrides it with PASSERELLE_STORE. */
export function resolveStoreSpec(configured: string | undefined, env?: OpenStoreOptions['env']): string {
  const fromEnv = env?.[STORE_ENV_VAR]?.trim();
  const spec = fromEnv !== undefined && fromEnv !== '' ? fromEnv : configured?.trim();
  if (spec === undefined || spec === '') {
    throw new ProtocolError('SCHEMA_INVALID', `No store configured (set the store in the configuration or ${STORE_ENV_VAR})`);
  }
  return spec;
}

export function parseStoreSpec(spec: string): StoreSpec {
  const value = spec.trim();
  if (POSTGRES_URL.test(value)) return { kind: 'postgres', url: value };
  if (SQLITE_PREFIX.test(value)) {
    let path = value.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path === '') throw new ProtocolError('SCHEMA_INVALID', 'The sqlite: store needs a file path');
    return { kind: 'sqlite', path };
  }
  if (OTHER_URL.test(value)) {
    throw new ProtocolError('SCHEMA_INVALID', 'Unsupported store URL: use sqlite:<path>, a file path, or postgres://');
  }
  if (value === '') throw new ProtocolError('SCHEMA_INVALID', 'No store configured');
  return { kind: 'sqlite', path: value };
}

/** The spec with any password replaced, for logs and error messages. */
export function redactStoreSpec(spec: string): string {
  return spec.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*:)[^@/?#]*@/i, '$1***@').replace(/([?&]password=)[^&#]*/gi, '$1***');
}

/**
 * Opens the store `configured` names (or PASSERELLE_STORE from `options.env`) and applies pending
 * migrations. Rejects with SCHEMA_INVALID for a value it cannot interpret and STORE_UNAVAILABLE when
 * the store cannot be opened.
 */
export async function openStore(configured: string | undefined, options: OpenStoreOptions = {}): Promise<Store> {
  const spec = parseStoreSpec(resolveStoreSpec(configured, options.env));
  if (spec.kind === 'postgres') return openPostgresStore(spec.url, options.postgres);
  const path = spec.path === ':memory:' || isAbsolute(spec.path) || options.baseDir === undefined ? spec.path : resolve(options.baseDir, spec.path);
  return openSqliteStore(path, options.sqlite);
}
