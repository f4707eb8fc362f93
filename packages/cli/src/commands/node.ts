/** `passerelle node init | start | info`. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger, initNodeDir, KEYS_DIR, NODE_DOCUMENT_FILE, startNode } from '@passerelle/node';
import { isNodeId, nodeFingerprints, NODE_ROLES, ProtocolError, verifyNodeDocument, type NodeRole, type VerifiedNodeDocument } from '@passerelle/protocol';
import { DIR_OPTION, flag, JSON_OPTION, list, nodeDir, reqStr, str, type Command } from '../command.js';
import { printFields, printJson, println, UsageError, EXIT_OK, EXIT_FAILURE } from '../io.js';
import { fileExists, readNodeConfig, runningNodeUrl, withStore } from '../node-dir.js';

const init: Command = {
  path: ['node', 'init'],
  summary: 'Create a node directory: config.json, keys/ (private JWKs, mode 0600) and the signed node document.',
  details: [
    'The node id is its public origin (https://node.agency.example); it listens on the port of that URL,',
    'behind a TLS-terminating proxy. For local trials use an http://127.0.0.1:PORT id with --dev, which',
    'also lets the node reach peers on loopback and private addresses (never in production).',
    `Roles: ${NODE_ROLES.join(', ')}.`,
  ].join('\n'),
  options: {
    dir: { ...DIR_OPTION, required: true },
    url: { type: 'string', placeholder: 'URL', description: 'The node id: its https origin (http only on loopback)', required: true },
    name: { type: 'string', placeholder: 'NAME', description: 'Organisation name shown to peers', required: true },
    country: { type: 'string', placeholder: 'CC', description: 'ISO 3166-1 alpha-2 country code, e.g. BE', required: true },
    role: { type: 'string', placeholder: 'ROLE', multiple: true, description: 'Organisation role (default: ngo)' },
    language: { type: 'string', placeholder: 'LANG', multiple: true, description: 'BCP 47 language the organisation works in (default: en)' },
    dev: { type: 'boolean', description: 'Development mode: loopback and private peers become reachable' },
    json: JSON_OPTION,
  },
  async run(ctx) {
    const dir = nodeDir(ctx, 'node init');
    const url = reqStr(ctx, 'url', 'node init');
    if (!isNodeId(url)) {
      throw new UsageError(`--url must be an origin such as https://node.agency.example (http only on loopback, no path): ${url}`, 'node init', 'SCHEMA_INVALID');
    }
    const country = reqStr(ctx, 'country', 'node init').toUpperCase();
    const roles = list(ctx, 'role');
    for (const r of roles) if (!(NODE_ROLES as readonly string[]).includes(r)) throw new UsageError(`unknown role ${r}; one of ${NODE_ROLES.join(', ')}`, 'node init', 'SCHEMA_INVALID');
    const languages = list(ctx, 'language');
    const dev = flag(ctx, 'dev');
    const created = await initNodeDir({
      dir,
      url,
      name: reqStr(ctx, 'name', 'node init'),
      country,
      ...(roles.length ? { roles: roles as NodeRole[] } : {}),
      ...(languages.length ? { languages } : {}),
      ...(dev ? { devMode: true } : {}),
    });
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, { dir: created.dir, id: created.id, fingerprints: created.fingerprints, listen: created.config.listen, store: created.config.store, devMode: created.config.devMode });
      return;
    }
    const out = ctx.io.stdout;
    println(out, `Initialised node ${created.id} in ${created.dir}`);
    printFields(
      out,
      [
        ['name', created.config.name],
        ['country', created.config.country],
        ['roles', created.config.roles.join(', ')],
        ['languages', created.config.languages.join(', ')],
        ['listen', `${created.config.listen.host}:${created.config.listen.port}`],
        ['store', created.config.store],
        ['dev mode', created.config.devMode ? 'on (loopback and private peers reachable)' : undefined],
        ...created.fingerprints.map((f) => ['fingerprint', f] as const),
      ],
      '  ',
    );
    println(out);
    println(out, 'Give the id and fingerprint to each organisation you sign an agreement with, out of band.');
    println(out, 'Next:');
    println(out, `  passerelle tokens create --dir ${created.dir} --role administrator`);
    println(out, `  passerelle peers add --dir ${created.dir} --id <peer id> --fingerprint <peer fingerprint>`);
    println(out, `  passerelle node start --dir ${created.dir}`);
    if (url.startsWith('http:') && !dev) println(ctx.io.stderr, 'note: an http (loopback) id is for local trials; add --dev so the node can reach loopback peers.');
  },
};

const start: Command = {
  path: ['node', 'start'],
  summary: 'Run the node (peer API, local API, outbox worker) until SIGINT or SIGTERM, then shut down gracefully.',
  details: [
    'Logs are JSON lines on stdout (pino), identifiers and codes only. The peer API answers at',
    '/inbox and /.well-known/passerelle/node, the local API at /api/v1 (bearer tokens, see',
    '`passerelle tokens create`), and /healthz, /readyz and /metrics (Prometheus) for operators.',
    'A second SIGINT during shutdown exits at once.',
  ].join('\n'),
  options: {
    dir: DIR_OPTION,
    'log-level': { type: 'string', placeholder: 'LEVEL', description: 'Override the configured log level (fatal..trace, silent)' },
  },
  async run(ctx) {
    const dir = nodeDir(ctx, 'node start');
    const config = await readNodeConfig(dir);
    const level = str(ctx, 'log-level') ?? config.logLevel;
    const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
    if (!levels.includes(level)) throw new UsageError(`--log-level must be one of ${levels.join(', ')}`, 'node start');
    const logger = createLogger({ level, destination: { write: (line: string) => ctx.io.stdout.write(line) } });
    const node = await startNode({ dir, logger });
    println(ctx.io.stderr, `passerelle: node ${node.id} listening on ${node.url ?? '(not listening)'}; Ctrl-C to stop`);

    // The first signal starts a graceful shutdown; a second one gives up waiting for it.
    let first: () => void = () => {};
    let second: () => void = () => {};
    const stopRequested = new Promise<void>((resolve) => (first = resolve));
    const forceRequested = new Promise<'forced'>((resolve) => (second = () => resolve('forced')));
    let signals = 0;
    const onSignal = () => {
      signals += 1;
      if (signals === 1) first();
      else second();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    ctx.io.signal?.addEventListener('abort', onSignal, { once: true });
    if (ctx.io.signal?.aborted) onSignal();
    try {
      await stopRequested;
      println(ctx.io.stderr, 'passerelle: shutting down (finishing deliveries in progress)');
      const outcome = await Promise.race([node.close().then(() => 'closed' as const), forceRequested]);
      if (outcome === 'forced') {
        println(ctx.io.stderr, 'passerelle: stopped without waiting');
        return EXIT_FAILURE;
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      ctx.io.signal?.removeEventListener('abort', onSignal);
    }
    println(ctx.io.stderr, 'passerelle: stopped');
    return EXIT_OK;
  },
};

interface KeyInfo {
  kid: string;
  use: string;
  notBefore: string;
  notAfter?: string;
  revokedAt?: string;
  held: boolean;
}

const info: Command = {
  path: ['node', 'info'],
  summary: 'Show the node id, the fingerprints peers pin, the node document version and the store state.',
  details: 'Read-only: safe while the node runs. The node document is checked against the keys in the directory.',
  options: { dir: DIR_OPTION, json: JSON_OPTION },
  async run(ctx) {
    const dir = nodeDir(ctx, 'node info');
    const config = await readNodeConfig(dir);
    const docFile = join(config.dataDir, NODE_DOCUMENT_FILE);
    if (!(await fileExists(docFile))) throw new ProtocolError('NOT_FOUND', `Node document not found: ${docFile}`);
    const jws = JSON.parse(await readFile(docFile, 'utf8')) as unknown;
    const held = new Set((await readdir(join(config.dataDir, KEYS_DIR)).catch(() => [] as string[])).map((n) => n.replace(/\.jwk\.json$/, '')));
    let verified: VerifiedNodeDocument;
    let expired = false;
    try {
      verified = await verifyNodeDocument(jws, { pinnedFingerprints: [...held], expectedId: config.id });
    } catch (e) {
      if (!(e instanceof ProtocolError) || e.code !== 'NODE_DOCUMENT_EXPIRED') throw e;
      // An expired own document is renewed at the next start; show it as of its issue time.
      expired = true;
      const issuedAt = (JSON.parse(Buffer.from((jws as { payload: string }).payload, 'base64url').toString('utf8')) as { issuedAt: string }).issuedAt;
      verified = await verifyNodeDocument(jws, { pinnedFingerprints: [...held], expectedId: config.id, now: new Date(issuedAt) });
    }
    const doc = verified.document;
    const keys: KeyInfo[] = doc.keys.map((k) => ({
      kid: k.kid,
      use: k.use,
      notBefore: k.notBefore,
      ...(k.notAfter ? { notAfter: k.notAfter } : {}),
      ...(k.revokedAt ? { revokedAt: k.revokedAt } : {}),
      held: held.has(k.kid),
    }));
    const state = await withStore(dir, async (store) => ({
      peers: (await store.listPeers()).length,
      agreements: (await store.listAgreements()).length,
      outbox: await store.countOutboxByState(),
      auditSize: await store.auditSize(),
      tokens: (await store.listTokens()).filter((t) => t.revokedAt === undefined).length,
    }));
    const running = await runningNodeUrl(config);
    const summary = {
      id: doc.id,
      name: doc.name,
      country: doc.country,
      roles: doc.roles,
      languages: doc.languages,
      inbox: doc.inbox,
      fingerprints: nodeFingerprints(doc),
      document: { version: doc.version, issuedAt: doc.issuedAt, expiresAt: doc.expiresAt, expired, payloadDigest: verified.payloadDigest },
      keys,
      listen: config.listen,
      store: config.store,
      devMode: config.devMode,
      running: running ?? null,
      state,
    };
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, summary);
      return;
    }
    const out = ctx.io.stdout;
    printFields(out, [
      ['id', doc.id],
      ['name', doc.name],
      ['country', doc.country],
      ['roles', doc.roles.join(', ')],
      ['languages', doc.languages.join(', ')],
      ['inbox', doc.inbox],
      ...summary.fingerprints.map((f) => ['fingerprint', f] as const),
      ['document', `version ${doc.version}, issued ${doc.issuedAt}, expires ${doc.expiresAt}${expired ? ' (EXPIRED: renewed at next start)' : ''}`],
      ['listen', `${config.listen.host}:${config.listen.port}`],
      ['store', config.store],
      ['dev mode', config.devMode ? 'on' : 'off'],
      ['running', running ? `yes, ${running}` : 'no'],
      ['peers', state.peers],
      ['agreements', state.agreements],
      ['tokens', `${state.tokens} active`],
      ['outbox', Object.entries(state.outbox).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['audit log', `${state.auditSize} events`],
    ]);
    println(out, 'keys:');
    for (const k of keys) {
      const status = k.revokedAt ? `revoked ${k.revokedAt}` : k.notAfter ? `until ${k.notAfter}` : 'current';
      println(out, `  ${k.use}  ${k.kid}  from ${k.notBefore}  ${status}${k.held ? '' : '  (private key not in keys/)'}`);
    }
  },
};

export const nodeCommands: Command[] = [init, start, info];
