export * from './types.js';
export { SqliteStore, openSqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION, type SqliteMigration } from './sqlite-migrations.js';
export { auditLeafHash, auditLeafData, canonicalJson } from './audit-leaf.js';
