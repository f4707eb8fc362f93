/**
 * The README's main job, `pnpm demo`, run in-process into a temporary directory: the final states
 * it must reach, not its wording.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MessageTypes } from '@passerelle/protocol';
import { runDemo, type DemoResult } from '../../../examples/three-node-demo/main.js';
import { verifyBundleFile } from '../src/commands/audit.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('three-node demo', () => {
  let result: DemoResult;
  let printed = '';

  it('runs from consent to erasure in well under 30 seconds', async () => {
    const out = await mkdtemp(join(tmpdir(), 'passerelle-demo-'));
    dirs.push(out);
    result = await runDemo({ out, write: (s) => (printed += s) });
    expect(result.outDir).toBe(out);
    expect(result.elapsedMs).toBeLessThan(30_000);
    expect(printed).toMatch(/^ {2}1 {2}BE admin/m);
  }, 60_000);

  it('delivers every message but the follow-up cancelled by the withdrawal', () => {
    const notDelivered = result.messages.filter((m) => m.state !== 'delivered');
    expect(notDelivered).toHaveLength(1);
    expect(notDelivered[0]).toMatchObject({ state: 'cancelled', type: MessageTypes.REFERRAL, from: result.nodes.be, to: result.nodes.fr });
    expect(result.withdrawal.cancelled).toEqual([notDelivered[0]!.id]);
    const types = (from: string) => result.messages.filter((m) => m.from === from).map((m) => m.type);
    expect(types(result.nodes.be)).toEqual(expect.arrayContaining([MessageTypes.REFERRAL, MessageTypes.REINTEGRATION_PROFILE, MessageTypes.CONSENT_WITHDRAWAL]));
    expect(types(result.nodes.sn)).toEqual(expect.arrayContaining([MessageTypes.REFERRAL_RESPONSE, MessageTypes.REINTEGRATION_UPDATE, MessageTypes.ERASURE_CONFIRMATION]));
    expect(types(result.nodes.fr)).toEqual(expect.arrayContaining([MessageTypes.REFERRAL_RESPONSE, MessageTypes.ERASURE_CONFIRMATION]));
  });

  it('withdraws the consent at BE and at every recipient, which erase and confirm', () => {
    expect(result.withdrawnAt.be).toBeDefined();
    expect(result.withdrawnAt.sn).toBeDefined();
    expect(result.withdrawnAt.fr).toBeDefined();
    expect(new Set(result.withdrawal.notified)).toEqual(new Set([result.nodes.sn, result.nodes.fr]));
    const byPeer = new Map(result.erasureConfirmations.map((c) => [c.from, c.erased]));
    expect(byPeer.get(result.nodes.sn)).toBe(2);
    expect(byPeer.get(result.nodes.fr)).toBe(1);
    expect(result.remainingPersonalData).toEqual({ fr: 0, sn: 0 });
  });

  it('writes an audit bundle that verifies offline', async () => {
    expect(result.bundle).toBeDefined();
    if (!result.bundle) return;
    expect(basename(result.bundle.file)).toContain('bundle');
    expect((await stat(result.bundle.file)).mode & 0o777).toBe(0o600);
    expect(result.bundle).toMatchObject({ ok: true, failures: 0 });
    const again = await verifyBundleFile(result.bundle.file);
    expect(again.ok).toBe(true);
  });
});
