#!/usr/bin/env node
/** The `passerelle` executable: runs the command line against the real process. */
import { run } from './cli.js';

const status = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  // Lazy: touching process.stdin opens it, which only `inspect -` needs.
  stdin: { [Symbol.asyncIterator]: () => process.stdin[Symbol.asyncIterator]() },
  cwd: process.cwd(),
  env: process.env,
});
// exitCode rather than exit(): pending writes to a pipe are flushed before the process ends.
process.exitCode = status;
