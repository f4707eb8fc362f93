/**
 * What a command may touch of the outside world. `run` receives it so tests can capture output and
 * exit codes in-process, and so `node start` can be stopped without sending the process a signal.
 */
import { ProtocolError, type ErrorCode } from '@passerelle/protocol';

export interface OutputStream {
  write(chunk: string): unknown;
  /** Whether the stream is a terminal (progress bars are drawn only there, or for large inputs). */
  isTTY?: boolean;
}

export interface Io {
  stdout: OutputStream;
  stderr: OutputStream;
  /** Read for `inspect -`. */
  stdin?: AsyncIterable<Uint8Array | string>;
  /** Relative paths resolve against it; process.cwd() when absent. */
  cwd?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Aborting it stops a long-running command (`node start`) as SIGINT would. */
  signal?: AbortSignal;
}

/** Exit statuses: 0 success, 1 a command failed, 2 the command line itself is wrong. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A wrong command line: printed like any error, with exit status 2 and a pointer to --help. */
export class UsageError extends ProtocolError {
  readonly helpFor: string;
  constructor(message: string, helpFor: string, code: ErrorCode = 'MALFORMED') {
    super(code, message);
    this.helpFor = helpFor;
  }
}

export function println(stream: OutputStream, line = ''): void {
  stream.write(`${line}\n`);
}

export function printJson(stream: OutputStream, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Two aligned columns, for `key  value` listings. */
export function printFields(stream: OutputStream, fields: readonly (readonly [string, string | number | undefined])[], indent = ''): void {
  const shown = fields.filter(([, v]) => v !== undefined && v !== '');
  const width = Math.max(0, ...shown.map(([k]) => k.length));
  for (const [k, v] of shown) println(stream, `${indent}${k.padEnd(width)}  ${v}`);
}
