/**
 * Runs one node in its own process: `node-process <dir> [--port <port>]`. Prints one JSON line
 * `{"ready":true,"id":...,"url":...}` on stdout once it listens, and closes cleanly on SIGTERM or
 * SIGINT. Used by crash tests (which kill it with SIGKILL) and usable as a minimal runner.
 * `--port` listens on another port than the configuration's: a further instance of the same node
 * (same directory, same PostgreSQL schema) behind a load balancer (spec/node.md §8).
 */
import { readConfigFile } from '../init.js';
import { startNode } from '../node.js';

const [dir, flag, portText] = process.argv.slice(2);
const port = flag === '--port' ? Number(portText) : undefined;
if (!dir || (flag !== undefined && (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535))) {
  process.stderr.write('usage: node-process <node directory> [--port <port>]\n');
  process.exit(2);
}

let node;
if (port === undefined) node = await startNode({ dir });
else {
  const config = await readConfigFile(dir);
  node = await startNode({ config: { ...config, listen: { host: config.listen.host, port } } });
}
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
