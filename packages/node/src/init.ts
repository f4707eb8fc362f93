/**
 * Creating and loading a node's data directory: config.json, keys/ (private JWKs, mode 0600) and
 * node-document.json (the signed node document served to peers).
 */
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { generateEncryptionKey, generateSigningKey, ProtocolError, type NodeRole } from '@passerelle/protocol';
import { CONFIG_FILE, parseConfig, type NodeConfigInput, type ResolvedConfig } from './config.js';
import { writeKeyFile } from './identity/key-files.js';
import { createInitialDocument, loadIdentity, writeDocumentFile, type NodeIdentity } from './identity/node-identity.js';

export interface InitNodeOptions {
  dir: string;
  /** The node id: its public origin, e.g. https://node.agency.example (http://127.0.0.1:port in devMode). */
  url: string;
  name: string;
  country: string;
  roles?: NodeRole[];
  languages?: string[];
  devMode?: boolean;
  /** Any other config.json fields (limits, outbox, webhooks, listen, store...). */
  config?: Partial<NodeConfigInput>;
}

export interface InitializedNode {
  dir: string;
  id: string;
  config: ResolvedConfig;
  /** What the other organisation pins for this node (RFC 7638 thumbprints of the signing keys). */
  fingerprints: string[];
}

export interface LoadedNode {
  dir: string;
  config: ResolvedConfig;
  identity: NodeIdentity;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export async function initNodeDir(options: InitNodeOptions): Promise<InitializedNode> {
  const dir = resolve(options.dir);
  if (await exists(join(dir, CONFIG_FILE))) throw new ProtocolError('MALFORMED', `${join(dir, CONFIG_FILE)} already exists`);
  const raw: NodeConfigInput = {
    ...options.config,
    id: options.url,
    name: options.name,
    country: options.country,
    roles: options.roles ?? ['ngo'],
    languages: options.languages ?? ['en'],
    ...(options.devMode !== undefined ? { devMode: options.devMode } : {}),
  };
  const config = parseConfig(raw, dir);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const signing = await generateSigningKey();
  const encryption = await generateEncryptionKey();
  await writeKeyFile(config.dataDir, signing);
  await writeKeyFile(config.dataDir, encryption);
  const jws = await createInitialDocument(config, signing, encryption);
  await writeDocumentFile(config.dataDir, jws);
  await writeFile(join(dir, CONFIG_FILE), `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
  return { dir, id: config.id, config, fingerprints: [signing.kid] };
}

export async function readConfigFile(dir: string): Promise<ResolvedConfig> {
  const path = join(resolve(dir), CONFIG_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new ProtocolError('MALFORMED', `Cannot read ${path}`, undefined, { cause: e });
  }
  return parseConfig(raw, resolve(dir));
}

export async function loadNode(dir: string): Promise<LoadedNode> {
  const config = await readConfigFile(dir);
  const identity = await loadIdentity(config);
  return { dir: resolve(dir), config, identity };
}
