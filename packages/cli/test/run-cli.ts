/** Runs the CLI in-process with captured output, as the tests and nothing else need it. */
import { createServer } from 'node:net';
import { run, type Io } from '../src/index.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function cli(argv: string[], options: { cwd?: string; stdin?: string; signal?: AbortSignal; env?: Record<string, string> } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: Io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: options.env ?? {},
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.stdin !== undefined
      ? {
          stdin: (async function* () {
            yield Buffer.from(options.stdin!);
          })(),
        }
      : {}),
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
