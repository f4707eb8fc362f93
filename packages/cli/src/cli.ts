/**
 * `run(argv, io)`: the whole command line as a function, so tests drive it in-process and the bin
 * entry (main.ts) only wires it to the real process. Every failure ends as `error <CODE>: message`
 * on stderr with a non-zero status; CODE is a ProtocolError code (spec/errors.md).
 */
import { ProtocolError } from '@passerelle/protocol';
import { helpText, makeContext, parseCommandArgs, type Command } from './command.js';
import { auditCommands } from './commands/audit.js';
import { inspectCommands } from './commands/inspect.js';
import { keysCommands } from './commands/keys.js';
import { nodeCommands } from './commands/node.js';
import { peersCommands } from './commands/peers.js';
import { tokensCommands } from './commands/tokens.js';
import { transferCommands } from './commands/transfer.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, println, UsageError, type Io } from './io.js';

export const CLI_VERSION = '0.1.0';

export const COMMANDS: readonly Command[] = [
  ...keysCommands,
  ...nodeCommands,
  ...peersCommands,
  ...tokensCommands,
  ...transferCommands,
  ...inspectCommands,
  ...auditCommands,
];

const GROUPS: Record<string, string> = {
  keys: 'Key generation',
  node: 'Create, run and describe a node',
  peers: 'The trust store: peers pinned by fingerprint',
  tokens: 'Local API bearer tokens',
  audit: 'Audit bundles: export and offline verification',
};

/** One line each for the command lists; the full summary is in each command's --help. */
const BRIEF: Record<string, string> = {
  'keys generate': 'Generate an Ed25519 or X25519 private JWK (file mode 0600)',
  'node init': 'Create a node directory: config, keys, signed node document',
  'node start': 'Run the node until SIGINT/SIGTERM',
  'node info': 'Node id, fingerprints, document version, store state',
  'peers add': 'Pin a peer by node id and fingerprint',
  'peers list': 'List pinned peers',
  'tokens create': 'Create a local API token (secret shown once)',
  'tokens list': 'List local API tokens',
  'tokens revoke': 'Revoke a local API token',
  export: 'Write queued messages for a peer to a transfer file',
  import: "Import a peer's transfer file or answer file",
  inspect: 'Decode any Passerelle object, UNVERIFIED',
  'audit export': 'Export a signed audit bundle',
  'audit verify': 'Verify an audit bundle offline',
};

function brief(c: Command): string {
  return BRIEF[c.path.join(' ')] ?? c.summary;
}

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.join(' ').length));
  return [
    'Usage: passerelle <command> [options]',
    '',
    'Passerelle: signed, encrypted, consent-bound exchange of referrals and reintegration profiles',
    'between organisations, with no central server.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${brief(c)}`),
    '',
    "Run 'passerelle <command> --help' for a command's options.",
    'Exit status: 0 success, 1 the command failed, 2 the command line is wrong. Errors print as',
    '`error <CODE>: message` with CODE from spec/errors.md.',
    '',
  ].join('\n');
}

function groupHelp(group: string): string {
  const commands = COMMANDS.filter((c) => c.path[0] === group);
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return [
    `Usage: passerelle ${group} <command> [options]`,
    '',
    GROUPS[group] ?? '',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${brief(c)}`),
    '',
  ].join('\n');
}

function findCommand(argv: readonly string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of COMMANDS) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { command: best, rest: argv.slice(best.path.length) } : undefined;
}

function printError(io: Io, e: unknown): number {
  if (e instanceof ProtocolError) {
    println(io.stderr, `error ${e.code}: ${e.message}`);
    const issues = (e.details as { issues?: { path?: string; message?: string }[] } | undefined)?.issues;
    if (Array.isArray(issues)) for (const i of issues) println(io.stderr, `  ${i.path || '(root)'}: ${i.message}`);
    if (e instanceof UsageError) {
      println(io.stderr, `Run 'passerelle ${e.helpFor ? `${e.helpFor} ` : ''}--help' for usage.`);
      return EXIT_USAGE;
    }
    return EXIT_FAILURE;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOENT') {
    println(io.stderr, `error NOT_FOUND: ${err.message}`);
    return EXIT_FAILURE;
  }
  if (err?.code === 'EACCES' || err?.code === 'EPERM') {
    println(io.stderr, `error FORBIDDEN: ${err.message}`);
    return EXIT_FAILURE;
  }
  println(io.stderr, `error INTERNAL: ${err instanceof Error ? err.message : String(err)}`);
  return EXIT_FAILURE;
}

/** Runs one command line (without the `node passerelle` prefix) and resolves to its exit status. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  try {
    const [first] = argv;
    if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && argv.length === 1)) {
      io.stdout.write(topHelp());
      return first === undefined ? EXIT_USAGE : EXIT_OK;
    }
    if (first === '--version' || first === '-v') {
      println(io.stdout, CLI_VERSION);
      return EXIT_OK;
    }
    // `passerelle help node init` is `passerelle node init --help`.
    const words = first === 'help' ? [...argv.slice(1), '--help'] : [...argv];
    const found = findCommand(words);
    if (!found) {
      const group = words[0]!;
      if (group in GROUPS) {
        const sub = words[1];
        if (sub === undefined || sub === '--help' || sub === '-h') {
          io.stdout.write(groupHelp(group));
          return sub === undefined ? EXIT_USAGE : EXIT_OK;
        }
        throw new UsageError(`unknown command: ${group} ${sub}`, group);
      }
      throw new UsageError(`unknown command: ${group}`, '');
    }
    const { command, rest } = found;
    const parsed = parseCommandArgs(command, rest);
    if (parsed.help) {
      io.stdout.write(helpText(command));
      return EXIT_OK;
    }
    const status = await command.run(makeContext(io, parsed.values, parsed.positionals));
    return typeof status === 'number' ? status : EXIT_OK;
  } catch (e) {
    return printError(io, e);
  }
}
