/**
 * The node's store from its configuration (spec/node.md §1). Store selection itself (sqlite:,
 * postgres://, PASSERELLE_STORE) lives in store/open-store.ts; here a relative SQLite path is taken
 * from the node's data directory rather than from wherever the process happens to start.
 */
import { isAbsolute, join } from 'node:path';
import { openStore as openConfiguredStore, parseStoreSpec, resolveStoreSpec } from './store/open-store.js';
import type { Store } from './store/types.js';

export async function openStore(configured: string, dataDir: string, env?: Readonly<Record<string, string | undefined>>): Promise<Store> {
  const spec = parseStoreSpec(resolveStoreSpec(configured, env));
  if (spec.kind === 'sqlite' && spec.path !== ':memory:' && !isAbsolute(spec.path)) {
    return openConfiguredStore(`sqlite:${join(dataDir, spec.path)}`);
  }
  return openConfiguredStore(spec.kind === 'sqlite' ? `sqlite:${spec.path}` : spec.url);
}
