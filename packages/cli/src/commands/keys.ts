/** `passerelle keys generate`: a fresh Ed25519 (sig) or X25519 (enc) key as a private JWK. */
import { chmod, writeFile } from 'node:fs/promises';
import { generateEncryptionKey, generateSigningKey, ProtocolError } from '@passerelle/protocol';
import { flag, str, type Command } from '../command.js';
import { printJson, println, UsageError } from '../io.js';

const generate: Command = {
  path: ['keys', 'generate'],
  summary: 'Generate a signing (Ed25519) or encryption (X25519) key as a private JWK whose kid is its RFC 7638 thumbprint.',
  details: [
    'The private key is written to a file created with mode 0600 (never overwriting one): --out, or',
    '<kid>.jwk.json in the current directory. Only the kid and the public JWK are printed.',
    '--show-private without --out prints the private JWK to stdout instead of writing a file; use it',
    'only to pipe the key straight into a secret store.',
  ].join('\n'),
  options: {
    type: { type: 'string', placeholder: 'sig|enc', description: 'sig (Ed25519, default) or enc (X25519)' },
    out: { type: 'string', placeholder: 'FILE', description: 'Where to write the private JWK (mode 0600)' },
    'show-private': { type: 'boolean', description: 'Print the private JWK instead of writing a file (only without --out)' },
    json: { type: 'boolean', description: 'Print {kid, publicJwk, file} as JSON' },
  },
  async run(ctx) {
    const type = str(ctx, 'type') ?? 'sig';
    if (type !== 'sig' && type !== 'enc') throw new UsageError('--type must be sig or enc', 'keys generate');
    const out = str(ctx, 'out');
    const showPrivate = flag(ctx, 'show-private');
    if (out !== undefined && showPrivate) throw new UsageError('--show-private and --out exclude each other', 'keys generate');
    const pair = type === 'sig' ? await generateSigningKey() : await generateEncryptionKey();
    const privateJwk = { ...pair.privateJwk, kid: pair.kid };
    const publicJwk = { ...pair.publicJwk, kid: pair.kid };
    if (showPrivate) {
      printJson(ctx.io.stdout, privateJwk);
      return;
    }
    const file = ctx.path(out ?? `${pair.kid}.jwk.json`);
    try {
      // 'wx': an existing key file is never overwritten, since a lost private key cannot be recovered.
      await writeFile(file, `${JSON.stringify(privateJwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new ProtocolError('MALFORMED', `${file} already exists; not overwriting a key file`);
      if (code === 'ENOENT') throw new ProtocolError('NOT_FOUND', `Directory not found for ${file}`);
      throw e;
    }
    // The umask may have narrowed the mode further but never widened it; make it exact.
    await chmod(file, 0o600);
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, { kid: pair.kid, use: type, publicJwk, file });
      return;
    }
    println(ctx.io.stdout, `kid         ${pair.kid}`);
    println(ctx.io.stdout, `use         ${type === 'sig' ? 'sig (Ed25519)' : 'enc (X25519)'}`);
    println(ctx.io.stdout, `private key ${file} (mode 0600)`);
    println(ctx.io.stdout, `public JWK  ${JSON.stringify(publicJwk)}`);
  },
};

export const keysCommands: Command[] = [generate];
