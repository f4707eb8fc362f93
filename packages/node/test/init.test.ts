import { chmod, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyNodeDocument } from '@passerelle/protocol';
import { initNodeDir, loadNode } from '../src/init.js';
import { tempDir } from './harness/cluster.js';

const dirs: string[] = [];
async function fresh() {
  const dir = await tempDir();
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('node directory', () => {
  it('writes config, private keys (0600) and a signed node document', async () => {
    const dir = await fresh();
    const init = await initNodeDir({ dir, url: 'https://node.agency.example', name: 'Agence Exemple', country: 'BE', roles: ['reception-agency'], languages: ['fr', 'nl'] });
    const keys = await readdir(join(dir, 'keys'));
    expect(keys).toHaveLength(2);
    for (const k of keys) expect((await stat(join(dir, 'keys', k))).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(await readFile(join(dir, 'node-document.json'), 'utf8'));
    const verified = await verifyNodeDocument(doc, { pinnedFingerprints: init.fingerprints, expectedId: 'https://node.agency.example' });
    expect(verified.document).toMatchObject({ name: 'Agence Exemple', country: 'BE', roles: ['reception-agency'], inbox: 'https://node.agency.example/inbox', version: 1 });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(JSON.stringify(config)).not.toContain('"d"');
    expect(init.config.store).toBe(`sqlite:${join(dir, 'node.db')}`);
  });

  it('refuses to initialise a directory twice', async () => {
    const dir = await fresh();
    await initNodeDir({ dir, url: 'https://node.agency.example', name: 'A', country: 'BE' });
    await expect(initNodeDir({ dir, url: 'https://node.agency.example', name: 'A', country: 'BE' })).rejects.toMatchObject({ code: 'MALFORMED' });
  });

  it('loads its identity, and re-issues the document when the configuration changes what it says', async () => {
    const dir = await fresh();
    const init = await initNodeDir({ dir, url: 'https://node.agency.example', name: 'Agence Exemple', country: 'BE' });
    const first = await loadNode(dir);
    expect(first.identity.document.version).toBe(1);
    expect(first.identity.signingKey().kid).toBe(init.fingerprints[0]);
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, name: 'Agence Exemple (Bruxelles)' }));
    const second = await loadNode(dir);
    expect(second.identity.document).toMatchObject({ version: 2, name: 'Agence Exemple (Bruxelles)' });
    // The new version chains from the first, so a peer that pinned the first follows it.
    await verifyNodeDocument(second.identity.documentJws, { known: first.identity.verified });
  });

  it('refuses a key file that others can read', async () => {
    const dir = await fresh();
    await initNodeDir({ dir, url: 'https://node.agency.example', name: 'A', country: 'BE' });
    const [key] = await readdir(join(dir, 'keys'));
    await chmod(join(dir, 'keys', key!), 0o644);
    await expect(loadNode(dir)).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });

  it('refuses a document that its own keys did not sign', async () => {
    const dir = await fresh();
    const other = await fresh();
    await initNodeDir({ dir, url: 'https://node.agency.example', name: 'A', country: 'BE' });
    await initNodeDir({ dir: other, url: 'https://node.agency.example', name: 'A', country: 'BE' });
    await writeFile(join(dir, 'node-document.json'), await readFile(join(other, 'node-document.json')));
    await expect(loadNode(dir)).rejects.toMatchObject({ code: 'FINGERPRINT_MISMATCH' });
  });
});
