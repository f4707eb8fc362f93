import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256b64u } from '@passerelle/protocol';
import { authenticateBearer, createToken, revokeToken } from '../src/auth/tokens.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { tempDir } from './harness/cluster.js';

describe('local API tokens', () => {
  let dir: string;
  let store: Store;
  beforeAll(async () => {
    dir = await tempDir();
    store = await openSqliteStore(join(dir, 'node.db'));
  });
  afterAll(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores only the hash of a random secret and authenticates by it', async () => {
    const t = await createToken(store, 'caseworker', 'case software');
    expect(t.secret).toMatch(/^pst_[A-Za-z0-9_-]{43}$/);
    const [stored] = (await store.listTokens()).filter((r) => r.id === t.id);
    expect(stored!.hash).toBe(await sha256b64u(t.secret));
    expect(JSON.stringify(await store.listTokens())).not.toContain(t.secret);
    expect((await authenticateBearer(store, `Bearer ${t.secret}`)).role).toBe('caseworker');
  });

  it('refuses missing, malformed, unknown and revoked tokens alike', async () => {
    const t = await createToken(store, 'auditor', 'auditor');
    for (const header of [undefined, '', 'Basic abc', `Bearer ${t.secret}x`, 'Bearer pst_unknownunknownunknownunknown']) {
      await expect(authenticateBearer(store, header)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    }
    await revokeToken(store, t.id);
    await expect(authenticateBearer(store, `Bearer ${t.secret}`)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('refuses unknown roles', async () => {
    await expect(createToken(store, 'root' as never, 'x')).rejects.toMatchObject({ code: 'SCHEMA_INVALID' });
  });
});
