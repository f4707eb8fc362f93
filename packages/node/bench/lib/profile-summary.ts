/**
 * Where a node run's main-thread time went, from a V8 CPU profile (BENCH_CPU_PROFILE): each sample
 * is given to the area of the innermost frame that belongs to one (so the WebCrypto call made by
 * the SDK counts as protocol work, and SQLite's native calls as store work), and the shares are
 * printed beside the profile file. Used by the node benchmarks for tuning; no test depends on it.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
}

/** Areas in the order they are tried on each frame, innermost frame first. */
const AREAS: readonly (readonly [string, (f: ProfileNode['callFrame']) => boolean])[] = [
  ['store (SQLite, PostgreSQL)', (f) => /\/node\/src\/store\//.test(f.url)],
  ['audit log', (f) => /\/node\/src\/audit\//.test(f.url)],
  ['consent and agreement checks', (f) => /\/node\/src\/policy\//.test(f.url)],
  ['HTTP message signatures', (f) => /message-signatures|structured-fields|signature-keyid|content-digest/.test(f.url)],
  ['protocol (build, seal, open, receipts)', (f) => /\/protocol\/src\//.test(f.url)],
  ['logging (pino)', (f) => /pino|sonic-boom/.test(f.url)],
  ['HTTP server (node:http, fastify)', (f) => /fastify|find-my-way|avvio|node:_http|node:http/.test(f.url)],
  ['HTTP client (undici)', (f) => /undici/.test(f.url)],
  ['sockets and streams', (f) => /node:net|node:internal\/stream|node:stream/.test(f.url)],
  ['node: outbox, inbox and the rest', (f) => /\/node\/src\//.test(f.url)],
  ['benchmark driver', (f) => /\/bench\//.test(f.url)],
];

const ENGINE = new Set(['(idle)', '(garbage collector)', '(program)']);

export function summariseProfile(profile: CpuProfile): { area: string; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const areaOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = areaOf.get(id);
    if (known !== undefined) return known;
    const leaf = byId.get(id)!.callFrame;
    let area: string | undefined = ENGINE.has(leaf.functionName) ? leaf.functionName : undefined;
    for (let cur: number | undefined = id; area === undefined && cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      area = AREAS.find(([, test]) => test(frame))?.[0];
    }
    area ??= 'other (native, runtime)';
    areaOf.set(id, area);
    return area;
  };
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    const area = classify(id);
    counts.set(area, (counts.get(area) ?? 0) + 1);
  }
  const total = Math.max(1, profile.samples.length);
  return [...counts]
    .map(([area, n]) => ({ area, share: Math.round((n / total) * 1000) / 1000 }))
    .sort((a, b) => b.share - a.share);
}

export function printProfileSummary(profile: CpuProfile, log: (line: string) => void): void {
  log('  main thread by area (CPU profile):');
  for (const { area, share } of summariseProfile(profile)) {
    if (share >= 0.005) log(`    ${(share * 100).toFixed(1).padStart(5)} %  ${area}`);
  }
}
