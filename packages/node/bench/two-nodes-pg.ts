/**
 * `pnpm bench:node:pg`: the two-node benchmark (two-nodes.ts) with both nodes on PostgreSQL — a
 * fresh database per setup, one schema per node — in two setups:
 *
 * 1. one instance per node;
 * 2. two instances of each node sharing its schema (the scale-out deployment of spec/node.md §8):
 *    same directory and configuration, each instance listening on its own port, both running
 *    their outbox workers on the shared outbox (leases claimed with FOR UPDATE SKIP LOCKED).
 *
 * A node id is one origin, so a peer can only address one URL: in setup 2 each node's id port is
 * served by a round-robin TCP proxy in this process (tcp-proxy.ts), the load balancer's stand-in,
 * rather than by having the sender deliver alternately, which would take a change to the node and
 * would not be what a deployment sees. The agency software's sends alternate between the two
 * sending instances, as they would behind that node's own load balancer.
 *
 * Everything runs in this process, like two-nodes.ts and for the same reason: the raw limit is
 * measured in the same event loop and thread pool. So setup 2 does not add CPU (there is none
 * to add on a small machine): it shows what sharing one database between instances costs —
 * lease contention, the shared audit log's row lock, the extra hop through the proxy — and that
 * every message still ends delivered exactly once. Writes bench-results/node-pg.json.
 *
 * Environment: as two-nodes.ts, plus PASSERELLE_BENCH_PG (admin connection URL; default
 * PASSERELLE_TEST_PG, else postgres://postgres@127.0.0.1:5432/test) and BENCH_SETUPS (`one,two`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { freePort } from '../test/harness/cluster.js';
import { measure, options, printResult, type SetupResult, type Topology } from './lib/measure.js';
import { createBenchDatabase, type BenchDatabase } from './lib/pg.js';
import { BenchWorkspace, connect } from './lib/setup.js';
import { startRoundRobinProxy, type RoundRobinProxy } from './lib/tcp-proxy.js';

const opts = options();
const log = (line: string) => process.stdout.write(`${line}\n`);
// The machine may be shared: its load before and after says how much the figures can be trusted.
const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);

const AGENCY = { name: 'Agence d\u2019accueil Exemple (BE)', country: 'BE', role: 'reception-agency' } as const;
const PARTNER = { name: 'Partenaire de réintégration Exemple (SN)', country: 'SN', role: 'reintegration-partner' } as const;

interface Setup {
  topology: Topology;
  proxies: RoundRobinProxy[];
}

async function oneInstanceEach(workspace: BenchWorkspace, db: BenchDatabase): Promise<Setup> {
  const a = await workspace.prepare({ ...AGENCY, store: db.storeUrl('node_a') }, opts);
  const b = await workspace.prepare({ ...PARTNER, store: db.storeUrl('node_b') }, opts);
  const sender = await workspace.start(a.dir);
  const receiver = await workspace.start(b.dir);
  const { agreementId, consentId } = await connect(sender, receiver);
  return {
    topology: {
      label: 'postgres: one instance per node',
      description: 'Two nodes in this process, each with its own schema in one fresh PostgreSQL database.',
      senders: [sender],
      receivers: [receiver],
      sender,
      receiver,
      agreementId,
      consentId,
    },
    proxies: [],
  };
}

async function twoInstancesEach(workspace: BenchWorkspace, db: BenchDatabase): Promise<Setup> {
  const a = await workspace.prepare({ ...AGENCY, store: db.storeUrl('node_a') }, opts);
  const b = await workspace.prepare({ ...PARTNER, store: db.storeUrl('node_b') }, opts);
  const proxyA = await startRoundRobinProxy(a.port);
  const proxyB = await startRoundRobinProxy(b.port);
  const ports = { a1: await freePort(), a2: await freePort(), b1: await freePort(), b2: await freePort() };
  const a1 = await workspace.start(a.dir, ports.a1);
  proxyA.backends.push(ports.a1);
  const b1 = await workspace.start(b.dir, ports.b1);
  proxyB.backends.push(ports.b1);
  // Pins, agreement and consent through the first instances; the second ones load them at start.
  const { agreementId, consentId } = await connect(a1, b1);
  const a2 = await workspace.start(a.dir, ports.a2);
  proxyA.backends.push(ports.a2);
  const b2 = await workspace.start(b.dir, ports.b2);
  proxyB.backends.push(ports.b2);
  return {
    topology: {
      label: 'postgres: two instances per node',
      description:
        'Two instances of each node sharing its schema, both running outbox workers; each node id served by a round-robin TCP proxy over its instances.',
      senders: [a1, a2],
      receivers: [b1, b2],
      sender: a1,
      receiver: b1,
      agreementId,
      consentId,
    },
    proxies: [proxyA, proxyB],
  };
}

const results: (SetupResult & { proxyConnections?: { sender: number[]; receiver: number[] } })[] = [];
const wanted = (process.env['BENCH_SETUPS'] ?? 'one,two').split(',').map((x) => x.trim());
const builders = [
  ['one', oneInstanceEach],
  ['two', twoInstancesEach],
] as const;
for (const [name, build] of builders) {
  if (!wanted.includes(name)) continue;
  const db = await createBenchDatabase();
  const workspace = new BenchWorkspace();
  let setup: Setup | undefined;
  try {
    setup = await build(workspace, db);
    const result = await measure(setup.topology, opts, log);
    const [proxyA, proxyB] = setup.proxies;
    printResult(result, log);
    if (proxyA && proxyB) {
      const proxyConnections = { sender: proxyA.connectionsPerBackend(), receiver: proxyB.connectionsPerBackend() };
      log(`  proxies   connections per receiver instance ${proxyConnections.receiver.join('/')}`);
      results.push({ ...result, proxyConnections });
    } else results.push(result);
  } finally {
    await workspace.close();
    for (const p of setup?.proxies ?? []) await p.close();
    await db.drop();
  }
}

const out = {
  benchmark: 'node-pg',
  node: process.version,
  cpus: cpus().length,
  loadAverage: { before: loadBefore, after: loadavg().map((x) => Math.round(x * 100) / 100) },
  messages: opts.messages,
  concurrency: opts.concurrency,
  warmup: opts.warmup,
  config: { perPeerConcurrency: opts.perPeerConcurrency, batchSize: opts.batchSize, logLevel: opts.logLevel, peerRateLimit: 'raised for the partner (100000/s)' },
  results,
  at: new Date().toISOString(),
};
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/node-pg.json', `${JSON.stringify(out, null, 2)}\n`);
if (results.some((r) => !r.checks.ok)) process.exitCode = 1;
