/**
 * Runs one node in its own process: `node-process <dir>`. Prints one JSON line
 * `{"ready":true,"id":...,"url":...}` on stdout once it listens, and closes cleanly on SIGTERM or
 * SIGINT. Used by crash tests (which kill it with SIGKILL) and usable as a minimal runner.
 */
import { startNode } from '../node.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node-process <node directory>\n');
  process.exit(2);
}

const node = await startNode({ dir });
process.stdout.write(`${JSON.stringify({ ready: true, id: node.id, url: node.url, pid: process.pid })}\n`);

let closing = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    node.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
