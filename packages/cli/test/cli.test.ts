/**
 * The `passerelle` command run in-process: exit statuses, output and the files it writes.
 * Fictional organisations only.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode } from '@passerelle/node';
import {
  buildReferral,
  generateEncryptionKey,
  generateSigningKey,
  seal,
  signMessage,
  signReceipt,
  thumbprint,
  type PrivateJwk,
} from '@passerelle/protocol';
import { COMMANDS } from '../src/index.js';
import { progressReporter } from '../src/commands/audit.js';
import { cli, freePort } from './run-cli.js';

let root: string;
const FP = /^[A-Za-z0-9_-]{43}$/;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'passerelle-cli-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function initNode(name: string, extra: string[] = []): Promise<{ dir: string; url: string; fingerprint: string }> {
  const dir = join(root, name);
  const url = `http://127.0.0.1:${await freePort()}`;
  const r = await cli(['node', 'init', '--dir', dir, '--url', url, '--name', `${name} Exemple`, '--country', 'BE', '--dev', '--json', ...extra]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout) as { id: string; fingerprints: string[] };
  return { dir, url: out.id, fingerprint: out.fingerprints[0]! };
}

describe('help and command-line errors', () => {
  it('lists every command and documents each one', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const c of COMMANDS) {
      expect(top.stdout).toContain(c.path.join(' '));
      const help = await cli([...c.path, '--help']);
      expect(help.code, c.path.join(' ')).toBe(0);
      expect(help.stdout).toContain(`Usage: passerelle ${c.path.join(' ')}`);
      expect(help.stdout).toContain('--help');
    }
    expect((await cli(['help', 'node', 'init'])).stdout).toContain('--url URL');
  });

  it('refuses an unknown command with a code and status 2', async () => {
    const r = await cli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error MALFORMED: unknown command: frobnicate\n/);
    const sub = await cli(['node', 'frobnicate']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toContain("Run 'passerelle node --help'");
  });

  it('refuses unknown options and missing required ones', async () => {
    const unknown = await cli(['node', 'info', '--dri', 'x']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error MALFORMED: .*--dri/);
    const missing = await cli(['node', 'init', '--dir', join(root, 'never'), '--name', 'X', '--country', 'BE']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('error MALFORMED: --url is required');
  });
});

describe('option values that start with a dash', () => {
  // Fingerprints are base64url: one in 32 starts with '-', and such a value must still bind to its option.
  it('binds a fingerprint starting with - or -- to --fingerprint, and still refuses a real unknown option', async () => {
    const a = await initNode('dash-values');
    for (const [i, fingerprint] of ['-' + 'A'.repeat(42), '--' + 'B'.repeat(41), '-h' + 'C'.repeat(41)].entries()) {
      const id = `https://partenaire-${i}.example.org`;
      const r = await cli(['peers', 'add', '--dir', a.dir, '--id', id, '--fingerprint', fingerprint, '--no-fetch']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const listed = await cli(['peers', 'list', '--dir', a.dir, '--json']);
    expect(listed.code).toBe(0);
    for (const fingerprint of ['-' + 'A'.repeat(42), '--' + 'B'.repeat(41), '-h' + 'C'.repeat(41)]) expect(listed.stdout).toContain(fingerprint);
    // A declared option after a value-taking one is still an option, so a forgotten value is reported.
    const forgotten = await cli(['peers', 'add', '--dir', a.dir, '--id', 'https://x.example.org', '--fingerprint', '--no-fetch']);
    expect(forgotten.code).toBe(2);
    expect(forgotten.stderr).toMatch(/^error MALFORMED: .*--fingerprint/);
  });
});

describe('node init and node info', () => {
  it('creates config, keys (mode 0600) and a signed node document, then describes them', async () => {
    const { dir, url, fingerprint } = await initNode('accueil', ['--role', 'reception-agency', '--language', 'fr', '--language', 'nl']);
    expect(fingerprint).toMatch(FP);
    const files = await readdir(dir);
    expect(files).toEqual(expect.arrayContaining(['config.json', 'node-document.json', 'keys']));
    for (const key of await readdir(join(dir, 'keys'))) expect((await stat(join(dir, 'keys', key))).mode & 0o777).toBe(0o600);

    const info = await cli(['node', 'info', '--dir', dir, '--json']);
    expect(info.code).toBe(0);
    const parsed = JSON.parse(info.stdout) as { id: string; fingerprints: string[]; document: { version: number }; roles: string[]; languages: string[]; running: unknown; state: { auditSize: number } };
    expect(parsed.id).toBe(url);
    expect(parsed.fingerprints).toEqual([fingerprint]);
    expect(parsed.document.version).toBe(1);
    expect(parsed.roles).toEqual(['reception-agency']);
    expect(parsed.languages).toEqual(['fr', 'nl']);
    expect(parsed.running).toBeNull();

    const text = await cli(['node', 'info', '--dir', dir]);
    expect(text.stdout).toContain(`fingerprint  ${fingerprint}`);
    expect(text.stdout).toMatch(/document\s+version 1/);
  });

  it('never overwrites an existing node', async () => {
    const { dir, url } = await initNode('twice');
    const again = await cli(['node', 'init', '--dir', dir, '--url', url, '--name', 'Twice', '--country', 'BE']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error MALFORMED: .*already exists/);
  });

  it('refuses a URL that is not a node id', async () => {
    for (const bad of ['http://example.org', 'https://node.example.org/path', 'not a url', 'ftp://node.example.org']) {
      const r = await cli(['node', 'init', '--dir', join(root, 'bad'), '--url', bad, '--name', 'X', '--country', 'BE']);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/^error SCHEMA_INVALID: --url must be an origin/);
    }
    const country = await cli(['node', 'init', '--dir', join(root, 'bad'), '--url', 'https://node.example.org', '--name', 'X', '--country', 'XX']);
    expect(country.code).toBe(1);
    expect(country.stderr).toContain('error SCHEMA_INVALID');
    expect(country.stderr).toContain('country');
  });

  it('says NOT_FOUND for a directory without a node', async () => {
    const r = await cli(['node', 'info', '--dir', join(root, 'nothing-here')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error NOT_FOUND: No node in /);
  });

  it('takes the directory from PASSERELLE_DIR', async () => {
    const { dir, url } = await initNode('from-env');
    const r = await cli(['node', 'info', '--json'], { env: { PASSERELLE_DIR: dir } });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { id: string }).id).toBe(url);
  });
});

describe('node start', () => {
  it('serves until stopped, then shuts down gracefully', async () => {
    const { dir, url } = await initNode('runner');
    const stop = new AbortController();
    const running = cli(['node', 'start', '--dir', dir, '--log-level', 'silent'], { signal: stop.signal });
    let healthy = false;
    for (let i = 0; i < 200 && !healthy; i++) {
      healthy = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      if (!healthy) await new Promise((r) => setTimeout(r, 25));
    }
    expect(healthy).toBe(true);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('passerelle_outbox_messages');
    const info = JSON.parse((await cli(['node', 'info', '--dir', dir, '--json'])).stdout) as { running: string };
    expect(info.running).toBe(url);
    stop.abort();
    const r = await running;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('listening on');
    expect(r.stderr).toContain('passerelle: stopped');
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});

describe('keys generate', () => {
  it('writes the private JWK with mode 0600 and prints only public material', async () => {
    const file = join(root, 'signing.jwk.json');
    const r = await cli(['keys', 'generate', '--out', file, '--json']);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as { kid: string; publicJwk: Record<string, unknown> };
    expect(printed.publicJwk).not.toHaveProperty('d');
    expect(r.stdout).not.toMatch(/"d"/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const jwk = JSON.parse(await readFile(file, 'utf8')) as PrivateJwk;
    expect(jwk.crv).toBe('Ed25519');
    expect(typeof jwk.d).toBe('string');
    expect(jwk.kid).toBe(printed.kid);
    expect(await thumbprint(jwk)).toBe(printed.kid);

    const again = await cli(['keys', 'generate', '--out', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
  });

  it('defaults to <kid>.jwk.json in the working directory, and --show-private prints instead', async () => {
    const cwd = await mkdtemp(join(root, 'keys-'));
    const r = await cli(['keys', 'generate', '--type', 'enc'], { cwd });
    expect(r.code).toBe(0);
    const kid = /kid\s+(\S+)/.exec(r.stdout)![1]!;
    expect(await readdir(cwd)).toEqual([`${kid}.jwk.json`]);
    expect(r.stdout).toContain('X25519');

    const shown = await cli(['keys', 'generate', '--show-private'], { cwd });
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toHaveProperty('d');
    expect(await readdir(cwd)).toHaveLength(1);

    const bad = await cli(['keys', 'generate', '--type', 'rsa']);
    expect(bad.code).toBe(2);
  });
});

describe('peers and tokens', () => {
  it('pins a peer and lists it', async () => {
    const a = await initNode('pin-a');
    const b = await initNode('pin-b');
    const add = await cli(['peers', 'add', '--dir', a.dir, '--id', b.url, '--fingerprint', b.fingerprint, '--no-fetch']);
    expect(add.code).toBe(0);
    expect(add.stdout).toContain(`Pinned ${b.url}`);
    const listed = JSON.parse((await cli(['peers', 'list', '--dir', a.dir, '--json'])).stdout) as { peers: { nodeId: string; fingerprints: string[] }[] };
    expect(listed.peers).toEqual([expect.objectContaining({ nodeId: b.url, fingerprints: [b.fingerprint] })]);
    expect((await cli(['peers', 'list', '--dir', a.dir])).stdout).toContain(`fingerprint ${b.fingerprint}`);
  });

  it('fetches and verifies the document of a running peer, and warns when it cannot', async () => {
    const a = await initNode('fetch-a');
    const b = await initNode('fetch-b');
    const offline = await cli(['peers', 'add', '--dir', a.dir, '--id', b.url, '--fingerprint', b.fingerprint]);
    expect(offline.code).toBe(0);
    expect(offline.stderr).toContain('PEER_UNREACHABLE');
    const node = await startNode({ dir: b.dir, worker: false, logger: (await import('@passerelle/node')).createLogger({ level: 'silent' }) });
    try {
      const online = await cli(['peers', 'add', '--dir', a.dir, '--id', b.url, '--fingerprint', b.fingerprint, '--json']);
      expect(online.code).toBe(0);
      expect((JSON.parse(online.stdout) as { document?: { version: number; name: string } }).document).toMatchObject({ version: 1, name: 'fetch-b Exemple' });
    } finally {
      await node.close();
    }
  });

  it('pins through the local API of a running node when given an administrator token', async () => {
    const a = await initNode('live-a');
    const b = await initNode('live-b');
    const admin = JSON.parse((await cli(['tokens', 'create', '--dir', a.dir, '--role', 'administrator', '--json'])).stdout) as { secret: string };
    const node = await startNode({ dir: a.dir, worker: false, logger: (await import('@passerelle/node')).createLogger({ level: 'silent' }) });
    try {
      const r = await cli(['peers', 'add', '--dir', a.dir, '--id', b.url, '--fingerprint', b.fingerprint, '--no-fetch'], { env: { PASSERELLE_TOKEN: admin.secret } });
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain('after a restart');
      expect(node.listPeers().map((p) => p.nodeId)).toEqual([b.url]);
      const refused = await cli(['peers', 'add', '--dir', a.dir, '--id', b.url, '--fingerprint', b.fingerprint, '--no-fetch', '--token', 'pst_not-a-valid-token-at-all-000000']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^error UNAUTHORIZED/);
    } finally {
      await node.close();
    }
  });

  it('refuses malformed peer ids and fingerprints', async () => {
    const a = await initNode('pin-bad');
    const fp = await cli(['peers', 'add', '--dir', a.dir, '--id', 'https://node.example.org', '--fingerprint', 'short']);
    expect(fp.code).toBe(2);
    expect(fp.stderr).toMatch(/^error SCHEMA_INVALID: --fingerprint/);
    const id = await cli(['peers', 'add', '--dir', a.dir, '--id', 'http://node.example.org', '--fingerprint', a.fingerprint]);
    expect(id.code).toBe(2);
    expect(id.stderr).toMatch(/^error SCHEMA_INVALID: --id/);
  });

  it('creates a token whose secret is shown once and works against the local API', async () => {
    const { dir, url } = await initNode('tokens');
    const created = await cli(['tokens', 'create', '--dir', dir, '--role', 'administrator', '--label', 'Admin laptop', '--json']);
    expect(created.code).toBe(0);
    const token = JSON.parse(created.stdout) as { id: string; secret: string; role: string };
    expect(token.role).toBe('administrator');
    expect(token.secret).toMatch(/^pst_/);
    const listed = await cli(['tokens', 'list', '--dir', dir]);
    expect(listed.stdout).toContain(token.id);
    expect(listed.stdout).not.toContain(token.secret);

    const node = await startNode({ dir, worker: false, logger: (await import('@passerelle/node')).createLogger({ level: 'silent' }) });
    try {
      const ok = await fetch(`${url}/api/v1/tokens`, { headers: { authorization: `Bearer ${token.secret}` } });
      expect(ok.status).toBe(200);
      // Created beside the running node, through the same store.
      const late = JSON.parse((await cli(['tokens', 'create', '--dir', dir, '--role', 'auditor', '--json'])).stdout) as { secret: string };
      expect((await fetch(`${url}/api/v1/audit`, { headers: { authorization: `Bearer ${late.secret}` } })).status).toBe(200);
      expect((await cli(['tokens', 'revoke', '--dir', dir, '--id', token.id])).code).toBe(0);
      expect((await fetch(`${url}/api/v1/tokens`, { headers: { authorization: `Bearer ${token.secret}` } })).status).toBe(401);
    } finally {
      await node.close();
    }

    const bad = await cli(['tokens', 'create', '--dir', dir, '--role', 'superuser']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error SCHEMA_INVALID: --role/);
  });
});

describe('inspect', () => {
  async function sealedReferral() {
    const host = { id: 'https://accueil.example.be', sig: await generateSigningKey() };
    const partner = { id: 'https://reintegration.example.sn', enc: await generateEncryptionKey(), sig: await generateSigningKey() };
    const message = buildReferral({
      from: host.id,
      to: partner.id,
      agreementId: '0193a000-0000-7000-8000-00000000a001',
      consentId: '0193a000-0000-7000-8000-00000000c001',
      body: { subject: 'case-be-2026-0042', services: ['reintegration-support'], urgency: 'routine', reasonCode: 'pre-departure' },
      data: { identity: { givenName: 'Awa', familyName: 'Exemple' }, 'return-travel': { destinationLocality: 'Thiès' } },
    });
    const sealed = await seal(message, { signingKey: host.sig, recipientKey: { ...partner.enc.publicJwk, kid: partner.enc.kid } });
    return { host, partner, message, sealed };
  }

  it('decodes a sealed message without decrypting it, labelled unverified', async () => {
    const { partner, sealed } = await sealedReferral();
    const file = join(root, 'message.jwe');
    await writeFile(file, sealed.jwe);
    const r = await cli(['inspect', file]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^UNVERIFIED/);
    expect(r.stdout).toContain('sealed message');
    expect(r.stdout).toContain(partner.enc.kid);
    expect(r.stdout).toContain('JOSE allow-list: conforms');
    expect(r.stdout).not.toContain('Awa');

    const json = JSON.parse((await cli(['inspect', file, '--json'])).stdout) as { verified: boolean; kind: string; header: { alg: string } };
    expect(json).toMatchObject({ verified: false, kind: 'sealed message', header: { alg: 'ECDH-ES+A256KW' } });
  });

  it('shows an SD-JWT with its disclosure count and claim names but never their values', async () => {
    const { host, message } = await sealedReferral();
    const { sdJwt } = await signMessage(message, host.sig);
    const r = await cli(['inspect', '-'], { stdin: `${sdJwt}\n` });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('message (referral)');
    expect(r.stdout).toContain('disclosures: 3 (');
    expect(r.stdout).toContain('givenName');
    expect(r.stdout).not.toContain('Awa');
    expect(r.stdout).not.toContain('Thiès');
    expect(r.stdout).toContain('concealed fields');
  });

  it('decodes receipts and node documents', async () => {
    const { host, partner, sealed, message } = await sealedReferral();
    const receipt = await signReceipt({ receiver: partner.id, sender: host.id, messageId: message.header.id, digest: sealed.digest, status: 'accepted', log: { index: 41 } }, partner.sig);
    const r = await cli(['inspect', '-'], { stdin: receipt });
    expect(r.stdout).toContain('receipt  [compact JWS');
    expect(r.stdout).toMatch(/status\s+accepted/);
    expect(r.stdout).toMatch(/audit position\s+index 41/);

    const node = await initNode('inspect-doc');
    const doc = await cli(['inspect', join(node.dir, 'node-document.json')]);
    expect(doc.code).toBe(0);
    expect(doc.stdout).toContain('node document');
    expect(doc.stdout).toContain(node.fingerprint);

    const key = await cli(['inspect', join(node.dir, 'keys', `${node.fingerprint}.jwk.json`)]);
    expect(key.stdout).toContain('private signing (Ed25519) JWK');
    expect(key.stdout).toContain('not shown');
    expect(key.stdout).not.toMatch(/\bd: /);
  });

  it('fails with NOT_FOUND for a missing file and MALFORMED for garbage', async () => {
    const missing = await cli(['inspect', join(root, 'nope.jwe')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error NOT_FOUND: File not found: /);
    const garbage = await cli(['inspect', '-'], { stdin: 'not a passerelle object' });
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/^error MALFORMED/);
    const json = await cli(['inspect', '-'], { stdin: '{"hello":"world"}' });
    expect(json.code).toBe(1);
    expect(json.stderr).toMatch(/^error WRONG_TYPE/);
    const none = await cli(['inspect']);
    expect(none.code).toBe(2);
  });
});

describe('offline transfer', () => {
  it('round-trips a transfer file and its answer between two pinned nodes', async () => {
    const a = await initNode('transfer-a');
    const b = await initNode('transfer-b');
    expect((await cli(['peers', 'add', '--dir', a.dir, '--id', b.url, '--fingerprint', b.fingerprint, '--no-fetch'])).code).toBe(0);
    expect((await cli(['peers', 'add', '--dir', b.dir, '--id', a.url, '--fingerprint', a.fingerprint, '--no-fetch'])).code).toBe(0);
    // B checks the manifest signature against A's node document, fetched from A once.
    const logger = (await import('@passerelle/node')).createLogger({ level: 'silent' });
    const nodeA = await startNode({ dir: a.dir, worker: false, logger });
    try {
      const file = join(root, 'a-to-b.json');
      const exported = await cli(['export', '--dir', a.dir, '--peer', b.url, '--out', file]);
      expect(exported.code).toBe(0);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const imported = await cli(['import', '--dir', b.dir, '--file', file, '--json']);
      expect(imported.stderr).toBe('');
      expect(imported.code).toBe(0);
      const result = JSON.parse(imported.stdout) as { from: string; answerFile: string; rejected: unknown[] };
      expect(result.from).toBe(a.url);
      expect(result.answerFile).toBe(join(root, 'a-to-b.answer.json'));
      expect(result.rejected).toEqual([]);
    } finally {
      await nodeA.close();
    }
    const answered = await cli(['import', '--dir', a.dir, '--file', join(root, 'a-to-b.answer.json')]);
    expect(answered.code).toBe(0);
    expect(answered.stdout).toContain('Imported an answer file');
  });

  it('refuses an unpinned peer and files that are not transfer files', async () => {
    const a = await initNode('transfer-c');
    const r = await cli(['export', '--dir', a.dir, '--peer', 'https://unknown.example.org', '--out', join(root, 'x.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error PEER_UNKNOWN/);
    const other = join(root, 'other.json');
    await writeFile(other, '{"format":"something-else"}');
    const wrong = await cli(['import', '--dir', a.dir, '--file', other]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error WRONG_TYPE/);
    const missing = await cli(['import', '--dir', a.dir, '--file', join(root, 'missing.json')]);
    expect(missing.stderr).toMatch(/^error NOT_FOUND/);
  });
});

describe('audit', () => {
  it('draws progress as a bar on a terminal and as a line per 10% elsewhere', () => {
    let tty = '';
    const bar = progressReporter({ write: (s: string) => (tty += s), isTTY: true }, true);
    bar.update({ done: 5, total: 10 });
    bar.done();
    expect(tty).toContain('[###############...............]  50%');
    expect(tty.endsWith('\r')).toBe(true);
    let plain = '';
    const lines = progressReporter({ write: (s: string) => (plain += s) }, true);
    for (let i = 0; i <= 100; i++) lines.update({ done: i, total: 100 });
    expect(plain.trim().split('\n')).toHaveLength(11);
    let off = '';
    progressReporter({ write: (s: string) => (off += s) }, false).update({ done: 1, total: 2 });
    expect(off).toBe('');
  });

  it('says clearly when this build cannot export bundles yet', async () => {
    const node = await initNode('audit-export');
    const r = await cli(['audit', 'export', '--dir', node.dir, '--out', join(root, 'bundle.json')]);
    if (r.code === 0) {
      expect(r.stdout).toContain('Wrote audit bundle');
      return;
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error INTERNAL: This build of the node cannot export audit bundles yet/);
  });

  it('refuses conflicting scopes and a missing bundle', async () => {
    const scopes = await cli(['audit', 'export', '--dir', root, '--thread', '0193a000-0000-7000-8000-00000000a001', '--peer', 'https://a.example.org', '--out', 'x']);
    expect(scopes.code).toBe(2);
    expect(scopes.stderr).toContain('choose one scope');
    const missing = await cli(['audit', 'verify', join(root, 'no-bundle.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error NOT_FOUND: Bundle not found/);
  });

  it('exits 1 with a report naming the failure for a bundle that does not verify', async () => {
    const file = join(root, 'broken-bundle.json');
    await writeFile(file, JSON.stringify({ format: 'passerelle-audit-bundle/1' }));
    const r = await cli(['audit', 'verify', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/✗/);
    const json = JSON.parse((await cli(['audit', 'verify', file, '--json'])).stdout) as { ok: boolean; failures: { code: string }[] };
    expect(json.ok).toBe(false);
    expect(json.failures[0]?.code).toBe('SCHEMA_INVALID');
  });
});
