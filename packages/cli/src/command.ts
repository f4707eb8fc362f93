/**
 * The shape every command shares: a path (`node init`), its options for node:util parseArgs, a
 * help text generated from the same option list (so help and parser cannot drift), and a handler.
 */
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, type Io } from './io.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Shown in help after the option name, e.g. DIR. */
  placeholder?: string;
  description: string;
  required?: boolean;
}

export interface CommandContext {
  io: Io;
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
  /** A path from the command line, resolved against io.cwd. */
  path(p: string): string;
  env(name: string): string | undefined;
}

export interface Command {
  /** Words after `passerelle`, e.g. ['node', 'init']. */
  path: readonly string[];
  summary: string;
  /** Positional arguments as shown in usage, e.g. '<bundle>'. */
  args?: string;
  positionals?: { min: number; max: number };
  options: Readonly<Record<string, OptionSpec>>;
  /** Extra paragraphs for --help. */
  details?: string;
  run(ctx: CommandContext): Promise<number | void>;
}

export function commandName(command: Command): string {
  return `passerelle ${command.path.join(' ')}`;
}

export function usageLine(command: Command): string {
  const opts = Object.entries(command.options).map(([name, o]) => {
    const flag = `--${name}${o.type === 'string' ? ` ${o.placeholder ?? 'VALUE'}` : ''}${o.multiple ? ' ...' : ''}`;
    return o.required ? flag : `[${flag}]`;
  });
  return [commandName(command), ...(command.args ? [command.args] : []), ...opts].join(' ');
}

export function helpText(command: Command): string {
  const lines = [`Usage: ${usageLine(command)}`, '', command.summary];
  if (command.details) lines.push('', command.details.trimEnd());
  const entries: [string, string][] = Object.entries(command.options).map(([name, o]) => [
    `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.placeholder ?? 'VALUE'}` : ''}`,
    `${o.description}${o.required ? ' (required)' : ''}${o.multiple ? ' (repeatable)' : ''}`,
  ]);
  entries.push(['-h, --help', 'Show this help']);
  const width = Math.max(...entries.map(([k]) => k.length));
  lines.push('', 'Options:', ...entries.map(([k, d]) => `  ${k.padEnd(width)}  ${d}`));
  return `${lines.join('\n')}\n`;
}

/**
 * Binds to a string option the value after it when that value starts with a dash but is not one
 * of the command's options: fingerprints and kids are base64url, and one in 32 starts with '-'
 * (`--fingerprint -Xy…`), which parseArgs would otherwise refuse as an ambiguous option.
 */
function bindDashValues(options: Record<string, { type: 'string' | 'boolean'; short?: string }>, argv: readonly string[]): string[] {
  const shorts = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const optionNamed = (token: string): string | undefined => {
    if (token.startsWith('--')) return token.slice(2).split('=')[0];
    if (token.length === 2) return shorts.get(token[1]!);
    return undefined;
  };
  const isOption = (token: string) => token === '--' || (token.startsWith('-') && (optionNamed(token) ?? '') in options);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    // After the terminator everything is a positional, as parseArgs reads it.
    if (token === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const name = token.includes('=') ? undefined : optionNamed(token);
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && next.startsWith('-') && next !== '-' && !isOption(next)) {
      out.push(`${token.startsWith('--') ? token : `--${name}`}=${next}`);
      i += 1;
    } else {
      out.push(token);
    }
  }
  return out;
}

/** Parses argv for one command; wrong options become a UsageError naming the command. */
export function parseCommandArgs(command: Command, argv: string[]): { values: CommandContext['values']; positionals: string[]; help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(command.options)) {
    options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: bindDashValues(options, argv), options, strict: true, allowPositionals: true, allowNegative: false });
  } catch (e) {
    // parseArgs messages name the offending option and say what is wrong; they carry no secrets.
    throw new UsageError((e as Error).message, command.path.join(' '));
  }
  const values = parsed.values as CommandContext['values'];
  const help = values.help === true;
  if (!help) {
    for (const [name, o] of Object.entries(command.options)) {
      if (o.required && values[name] === undefined) throw new UsageError(`--${name} is required`, command.path.join(' '));
    }
    const { min, max } = command.positionals ?? { min: 0, max: 0 };
    if (parsed.positionals.length < min) throw new UsageError(`missing argument ${command.args ?? ''}`.trim(), command.path.join(' '));
    if (parsed.positionals.length > max) throw new UsageError(`unexpected argument: ${parsed.positionals[max]}`, command.path.join(' '));
  }
  return { values, positionals: parsed.positionals, help };
}

export function makeContext(io: Io, values: CommandContext['values'], positionals: string[]): CommandContext {
  const cwd = io.cwd ?? process.cwd();
  const env = io.env ?? process.env;
  return {
    io,
    values,
    positionals,
    path: (p) => (isAbsolute(p) ? p : resolve(cwd, p)),
    env: (name) => env[name],
  };
}

/** Typed accessors: parseArgs returns a union, each command knows what it declared. */
export function str(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function reqStr(ctx: CommandContext, name: string, command: string): string {
  const v = str(ctx, name);
  if (v === undefined || v.length === 0) throw new UsageError(`--${name} is required`, command);
  return v;
}

export function list(ctx: CommandContext, name: string): string[] {
  const v = ctx.values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
}

export function flag(ctx: CommandContext, name: string): boolean {
  return ctx.values[name] === true;
}

/** `--dir`, or PASSERELLE_DIR, resolved; a usage error when neither is given. */
export function nodeDir(ctx: CommandContext, command: string): string {
  const dir = str(ctx, 'dir') ?? ctx.env('PASSERELLE_DIR');
  if (!dir) throw new UsageError('--dir is required (or set PASSERELLE_DIR)', command);
  return ctx.path(dir);
}

export const DIR_OPTION: OptionSpec = { type: 'string', placeholder: 'DIR', description: 'The node directory (default: $PASSERELLE_DIR)' };
export const JSON_OPTION: OptionSpec = { type: 'boolean', description: 'Print JSON instead of text' };
