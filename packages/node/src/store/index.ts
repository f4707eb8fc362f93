export * from './types.js';
export { SqliteStore, openSqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION, type SqliteMigration } from './sqlite-migrations.js';
export { auditLeafHash, auditLeafData, canonicalJson } from './audit-leaf.js';
export { PostgresStore, openPostgresStore, type PostgresStoreOptions } from './postgres.js';
export { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION, type PostgresMigration } from './postgres-migrations.js';
export { openStore, parseStoreSpec, resolveStoreSpec, redactStoreSpec, STORE_ENV_VAR, type OpenStoreOptions, type StoreSpec } from './open-store.js';
