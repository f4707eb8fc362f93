import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNodeDocument,
  generateEncryptionKey,
  generateSigningKey,
  nodeKeyEntry,
  rotateNodeDocument,
  verifyNodeDocument,
  type GeneralJws,
  type SigningKeyPair,
} from '@passerelle/protocol';
import { createLogger } from '../src/observability/logger.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/types.js';
import { TrustStore } from '../src/trust/trust-store.js';
import { tempDir } from './harness/cluster.js';

const PEER = 'https://partner.example';

describe('trust store', () => {
  let dir: string;
  let store: Store;
  let key: SigningKeyPair;
  let served: GeneralJws;
  let fetches = 0;
  let clock = Date.parse('2026-05-01T10:00:00Z');
  const trust = () =>
    new TrustStore({
      store,
      logger: createLogger({ level: 'silent' }),
      refreshIntervalMs: 60_000,
      now: () => new Date(clock),
      fetchDocument: async (nodeId) => {
        fetches += 1;
        expect(nodeId).toBe(PEER);
        return served;
      },
    });

  beforeAll(async () => {
    dir = await tempDir();
    store = await openSqliteStore(join(dir, 'node.db'));
    key = await generateSigningKey();
    const enc = await generateEncryptionKey();
    const now = new Date(clock);
    served = await createNodeDocument(
      {
        id: PEER,
        name: 'Partenaire Exemple',
        country: 'SN',
        roles: ['reintegration-partner'],
        inbox: `${PEER}/inbox`,
        keys: [nodeKeyEntry(key, { notBefore: now }), nodeKeyEntry(enc, { notBefore: now })],
        messageTypes: ['referral'],
        languages: ['fr'],
      },
      [key],
      { now },
    );
  });
  afterAll(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('knows nothing until an administrator pins a peer, and never fetches for others', async () => {
    const t = trust();
    await t.load();
    expect(t.peerForKeyid(key.kid)).toBeUndefined();
    await expect(t.refresh('https://stranger.example')).rejects.toMatchObject({ code: 'PEER_UNKNOWN' });
    expect(fetches).toBe(0);
    await expect(t.addPeer('http://partner.example', [key.kid])).rejects.toMatchObject({ code: 'SCHEMA_INVALID' });
    await expect(t.addPeer(PEER, ['short'])).rejects.toMatchObject({ code: 'SCHEMA_INVALID' });
  });

  it('accepts the pinned document, persists it, and reloads it from the store', async () => {
    const t = trust();
    await t.addPeer(PEER, [key.kid]);
    expect(t.peerForKeyid(key.kid)).toBe(PEER);
    const v = await t.refresh(PEER);
    expect(v.document.version).toBe(1);
    const reloaded = trust();
    await reloaded.load();
    expect(reloaded.cachedDocument(PEER)?.document.version).toBe(1);
    expect(reloaded.signingKey(PEER, key.kid, new Date(clock))?.x).toBe(key.publicJwk.x);
  });

  it('refreshes on an unknown key at most once per interval, follows a rotation and refuses rollback', async () => {
    const t = trust();
    await t.load();
    const newKey = await generateSigningKey();
    const before = fetches;
    expect(await t.signingKeyWithRefresh(PEER, newKey.kid, new Date(clock))).toBeUndefined();
    expect(fetches).toBe(before + 1);
    expect(await t.signingKeyWithRefresh(PEER, newKey.kid, new Date(clock))).toBeUndefined();
    expect(fetches).toBe(before + 1);

    const v1 = served;
    clock += 61_000;
    const known = await verifyNodeDocument(v1, { now: new Date(clock) });
    served = await rotateNodeDocument(known, {}, { oldKeys: [key], newKeys: [newKey], now: new Date(clock) });
    expect((await t.signingKeyWithRefresh(PEER, newKey.kid, new Date(clock)))?.x).toBe(newKey.publicJwk.x);
    expect(t.peerForKeyid(newKey.kid)).toBe(PEER);
    expect((await store.getPeer(PEER))?.documentVersion).toBe(2);

    served = v1;
    await expect(t.refresh(PEER)).rejects.toMatchObject({ code: 'NODE_DOCUMENT_STALE' });
    expect(t.cachedDocument(PEER)?.document.version).toBe(2);
  });

  it('refetches a document close to expiry', async () => {
    const t = trust();
    await t.load();
    const before = fetches;
    await t.document(PEER);
    expect(fetches).toBe(before);
    clock += 30 * 24 * 3600_000;
    await expect(t.document(PEER)).rejects.toBeDefined();
    expect(fetches).toBe(before + 1);
  });
});
