/**
 * `pnpm bench:node`: two reference nodes on this machine, each with its own SQLite store, a
 * referral flow set up between them (pins, co-signed agreement, consent), then N referrals of
 * ~4 KiB of message JSON with a bounded number outstanding. Prints sustained messages per second
 * and delivery latency beside the raw crypto limit of the same run (and the SDK's), and writes
 * bench-results/node-two-nodes.json. Two setups:
 *
 * - `in-process` (the figure the target applies to): both nodes in this process, as is the raw
 *   limit. One event loop and one libuv thread pool for both measurements, so their ratio is the
 *   node's own overhead (HTTP, HTTP message signatures, consent and agreement checks, storage,
 *   logging) over the unavoidable crypto, with the same means to run it.
 * - `processes`: each node in a process of its own, driven over IPC, as two organisations' nodes
 *   are deployed. Each node then has an event loop of its own, which the raw limit (crypto mostly
 *   on the thread pool, already spread over the cores) does not need; on a machine with few cores
 *   the two processes also compete with each other. It shows how far a pair of nodes is bound by
 *   single-threaded JavaScript rather than by crypto.
 *
 * Environment: BENCH_MESSAGES (2000), BENCH_CONCURRENCY (16), BENCH_WARMUP (200),
 * BENCH_RAW_ROUNDS (4), BENCH_PER_PEER_CONCURRENCY (= concurrency), BENCH_BATCH_SIZE,
 * BENCH_LOG_LEVEL (info | warn | silent), BENCH_SETUPS (`in-process,processes`),
 * BENCH_CPU_PROFILE (directory for a CPU profile of the measured run, in-process only).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startNode, type RunningNode } from '../src/index.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { measure, options, printResult, type SetupResult, type Topology } from './lib/measure.js';
import { RemoteNode } from './lib/remote-node.js';
import { BenchWorkspace, connect, type PreparedDir } from './lib/setup.js';

const opts = options();
const log = (line: string) => process.stdout.write(`${line}\n`);
// The machine may be shared: its load before and after says how much the figures can be trusted.
const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);

const AGENCY = { name: 'Agence d\u2019accueil Exemple (BE)', country: 'BE', role: 'reception-agency' } as const;
const PARTNER = { name: 'Partenaire de réintégration Exemple (SN)', country: 'SN', role: 'reintegration-partner' } as const;

interface Setup {
  topology: Topology;
  close(): Promise<void>;
}

async function inProcess(workspace: BenchWorkspace): Promise<Setup> {
  const a = await workspace.prepare(AGENCY, opts);
  const b = await workspace.prepare(PARTNER, opts);
  const sender = await workspace.start(a.dir);
  const receiver = await workspace.start(b.dir);
  const { agreementId, consentId } = await connect(sender, receiver);
  return {
    topology: {
      label: 'sqlite: one instance per node, both in this process',
      description: 'Two nodes in this process, each with its own SQLite file (WAL, synced before every answer).',
      senders: [sender],
      receivers: [receiver],
      sender,
      receiver,
      agreementId,
      consentId,
    },
    close: async () => undefined,
  };
}

async function inProcesses(workspace: BenchWorkspace): Promise<Setup> {
  const a = await workspace.prepare(AGENCY, opts);
  const b = await workspace.prepare(PARTNER, opts);
  // Pins, agreement and consent are set up here, then each node restarts in its own process.
  const setupNodes: RunningNode[] = [await startNode({ dir: a.dir, logDestination: devNull() }), await startNode({ dir: b.dir, logDestination: devNull() })];
  const { agreementId, consentId } = await connect(setupNodes[0]!, setupNodes[1]!);
  for (const n of setupNodes) await n.close();
  const sender = await RemoteNode.start(a.dir);
  const receiver = await RemoteNode.start(b.dir);
  const inspect = async (p: PreparedDir) => openSqliteStore(join(p.dir, 'node.db'), { readOnly: true });
  const senderStore = await inspect(a);
  const receiverStore = await inspect(b);
  return {
    topology: {
      label: 'sqlite: one instance per node, each in its own process',
      description: 'Two nodes, each in a child process with its own SQLite file, driven over IPC.',
      senders: [sender],
      receivers: [receiver],
      sender: { id: a.id, store: senderStore },
      receiver: { id: b.id, store: receiverStore },
      agreementId,
      consentId,
    },
    close: async () => {
      await sender.close();
      await receiver.close();
      await senderStore.close();
      await receiverStore.close();
    },
  };
}

function devNull() {
  return pino.destination({ dest: '/dev/null', sync: false });
}

const wanted = (process.env['BENCH_SETUPS'] ?? 'in-process,processes').split(',').map((x) => x.trim());
const builders = [
  ['in-process', inProcess],
  ['processes', inProcesses],
] as const;
const results: SetupResult[] = [];
for (const [name, build] of builders) {
  if (!wanted.includes(name)) continue;
  const workspace = new BenchWorkspace();
  let setup: Setup | undefined;
  try {
    setup = await build(workspace);
    const result = await measure(setup.topology, opts, log);
    printResult(result, log);
    results.push(result);
  } finally {
    await setup?.close();
    await workspace.close();
  }
}

const out = {
  benchmark: 'node-two-nodes',
  node: process.version,
  cpus: cpus().length,
  loadAverage: { before: loadBefore, after: loadavg().map((x) => Math.round(x * 100) / 100) },
  messages: opts.messages,
  concurrency: opts.concurrency,
  warmup: opts.warmup,
  config: { perPeerConcurrency: opts.perPeerConcurrency, batchSize: opts.batchSize, logLevel: opts.logLevel, peerRateLimit: 'raised for the partner (100000/s)' },
  target: 'the in-process setup sustains at least 0.5 of the raw limit',
  results,
  at: new Date().toISOString(),
};
mkdirSync('bench-results', { recursive: true });
writeFileSync('bench-results/node-two-nodes.json', `${JSON.stringify(out, null, 2)}\n`);
if (results.some((r) => !r.checks.ok)) process.exitCode = 1;
