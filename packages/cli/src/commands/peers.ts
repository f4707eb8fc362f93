/** `passerelle peers add | list`: the trust store, pinned by node id and signing-key fingerprints. */
import { API_PREFIX, type PeerView } from '@passerelle/node';
import { isErrorCode, isNodeId, ProtocolError, type NodeDocument } from '@passerelle/protocol';
import { DIR_OPTION, flag, JSON_OPTION, list, nodeDir, reqStr, str, type Command } from '../command.js';
import { printJson, println, UsageError } from '../io.js';
import { readNodeConfig, runningNodeUrl, withOfflineNode, withStore } from '../node-dir.js';

const FINGERPRINT = /^[A-Za-z0-9_-]{43}$/;

const add: Command = {
  path: ['peers', 'add'],
  summary: "Pin a peer by its node id and signing-key fingerprint(s), exchanged out of band when the agreement is signed.",
  details: [
    'There is no trust on first use: the peer\'s node document is fetched and accepted only if a',
    'pinned key signed it. A fetch failure leaves the pin in place (it is retried on first use).',
    'When the node is running and an administrator token is given (--token or PASSERELLE_TOKEN),',
    'the peer is pinned through the node\'s local API and takes effect at once; otherwise it is',
    'written to the store, and a running node sees it after a restart.',
  ].join('\n'),
  options: {
    dir: DIR_OPTION,
    id: { type: 'string', placeholder: 'NODE_ID', description: "The peer's node id (its https origin)", required: true },
    fingerprint: { type: 'string', placeholder: 'KID', multiple: true, description: 'RFC 7638 thumbprint of a signing key of the peer', required: true },
    'no-fetch': { type: 'boolean', description: "Do not fetch the peer's node document now" },
    token: { type: 'string', placeholder: 'SECRET', description: 'Administrator token, to pin through a running node (default: $PASSERELLE_TOKEN)' },
    json: JSON_OPTION,
  },
  async run(ctx) {
    const dir = nodeDir(ctx, 'peers add');
    const id = reqStr(ctx, 'id', 'peers add');
    if (!isNodeId(id)) throw new UsageError(`--id must be a node id (an https origin, http only on loopback): ${id}`, 'peers add', 'SCHEMA_INVALID');
    const fingerprints = list(ctx, 'fingerprint');
    const bad = fingerprints.find((f) => !FINGERPRINT.test(f));
    if (bad !== undefined) throw new UsageError(`--fingerprint must be a 43-character base64url SHA-256 thumbprint: ${bad}`, 'peers add', 'SCHEMA_INVALID');
    const config = await readNodeConfig(dir);
    const running = await runningNodeUrl(config);
    const token = str(ctx, 'token') ?? ctx.env('PASSERELLE_TOKEN');
    const fetchDocument = !flag(ctx, 'no-fetch');
    const viaApi = running !== undefined && token !== undefined;
    const view = running !== undefined && token !== undefined
      ? await pinThroughApi(running, token, { nodeId: id, fingerprints, fetchDocument })
      : await withOfflineNode(dir, (node) => node.addPeer(id, fingerprints, { fetchDocument }));
    if (flag(ctx, 'json')) printJson(ctx.io.stdout, view);
    else {
      println(ctx.io.stdout, `Pinned ${view.nodeId} (${view.fingerprints.length} fingerprint${view.fingerprints.length === 1 ? '' : 's'})`);
      if (view.document) println(ctx.io.stdout, `  document version ${view.document.version}: ${view.document.name} (${view.document.country}), inbox ${view.document.inbox}`);
    }
    if (view.documentError) println(ctx.io.stderr, `warning: could not fetch the peer's node document now (${view.documentError}); it will be fetched on first use`);
    if (running && !viaApi) println(ctx.io.stderr, `note: the node running at ${running} sees this peer after a restart; give --token to pin it through its local API`);
  },
};

/** POST /api/v1/peers on the running node, so its trust store learns the peer at once. */
async function pinThroughApi(base: string, token: string, body: { nodeId: string; fingerprints: string[]; fetchDocument: boolean }): Promise<PeerView> {
  const response = await fetch(`${base}${API_PREFIX}/peers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    redirect: 'manual',
    signal: AbortSignal.timeout(30_000),
  });
  const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok) {
    const code = isErrorCode(json.code) ? json.code : 'PEER_RESPONSE_INVALID';
    throw new ProtocolError(code, `The running node refused: ${String(json.detail ?? json.title ?? response.status)}`);
  }
  return json as unknown as PeerView;
}

function documentOf(raw: string | undefined): NodeDocument | undefined {
  if (!raw) return undefined;
  try {
    // Stored documents were verified on arrival; this only reads their fields for display.
    const jws = JSON.parse(raw) as { payload: string };
    return JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as NodeDocument;
  } catch {
    return undefined;
  }
}

const ls: Command = {
  path: ['peers', 'list'],
  summary: 'List pinned peers with their fingerprints and the node document version held.',
  options: { dir: DIR_OPTION, json: JSON_OPTION },
  async run(ctx) {
    const dir = nodeDir(ctx, 'peers list');
    const peers = await withStore(dir, async (store) => store.listPeers());
    const rows = peers.map((p) => {
      const d = documentOf(p.document);
      return {
        nodeId: p.nodeId,
        fingerprints: p.fingerprints,
        addedAt: p.addedAt,
        updatedAt: p.updatedAt,
        ...(d ? { document: { version: d.version, name: d.name, country: d.country, roles: d.roles, expiresAt: d.expiresAt } } : {}),
      };
    });
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, { peers: rows });
      return;
    }
    if (rows.length === 0) {
      println(ctx.io.stdout, 'No peers pinned. Add one with: passerelle peers add --dir DIR --id NODE_ID --fingerprint KID');
      return;
    }
    for (const r of rows) {
      println(ctx.io.stdout, r.nodeId);
      println(ctx.io.stdout, `  ${r.document ? `${r.document.name} (${r.document.country}), document version ${r.document.version}, expires ${r.document.expiresAt}` : 'node document not fetched yet'}`);
      for (const f of r.fingerprints) println(ctx.io.stdout, `  fingerprint ${f}`);
      println(ctx.io.stdout, `  pinned ${r.addedAt}`);
    }
  },
};

export const peersCommands: Command[] = [add, ls];
