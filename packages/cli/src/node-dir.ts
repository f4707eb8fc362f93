/**
 * Opening a node directory from the command line. Commands work on the node's own store through
 * the node's own services (same transactions, same audit events as the local API), so they are
 * safe beside a running node: SQLite in WAL mode takes a second connection, and every write is one
 * of the store's transactions.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { CONFIG_FILE, createLogger, openStore, readConfigFile, startNode, type ResolvedConfig, type RunningNode, type Store } from '@passerelle/node';
import { ProtocolError } from '@passerelle/protocol';

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export async function requireFile(path: string, what = 'File'): Promise<void> {
  if (!(await fileExists(path))) throw new ProtocolError('NOT_FOUND', `${what} not found: ${path}`);
}

export async function readNodeConfig(dir: string): Promise<ResolvedConfig> {
  await requireFile(join(dir, CONFIG_FILE), `No node in ${dir}:`);
  return readConfigFile(dir);
}

/**
 * The node's services without its server or outbox worker: whatever is queued here is delivered
 * by the node process when it runs (its worker polls the store).
 */
export async function withOfflineNode<T>(dir: string, fn: (node: RunningNode) => Promise<T>): Promise<T> {
  await readNodeConfig(dir);
  const node = await startNode({ dir, listen: false, worker: false, logger: createLogger({ level: 'silent' }) });
  try {
    return await fn(node);
  } finally {
    await node.close();
  }
}

export async function withStore<T>(dir: string, fn: (store: Store, config: ResolvedConfig) => Promise<T>): Promise<T> {
  const config = await readNodeConfig(dir);
  const store = await openStore(config.store, config.dataDir);
  try {
    return await fn(store, config);
  } finally {
    await store.close();
  }
}

/** The node's own address if a node answers there now (so commands can say when a restart is needed). */
export async function runningNodeUrl(config: ResolvedConfig): Promise<string | undefined> {
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${config.listen.port}`;
  try {
    // Nothing listening is refused at once; a node that is listening but busy gets time to answer,
    // since taking it for stopped would send the command to its store behind its back.
    const response = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(3000), redirect: 'manual' });
    await response.body?.cancel();
    return response.ok ? base : undefined;
  } catch {
    return undefined;
  }
}
