/** `passerelle tokens create | list | revoke`: bearer tokens of the local API, one role each. */
import { createToken, revokeToken, TOKEN_ROLES, type TokenRole } from '@passerelle/node';
import { DIR_OPTION, flag, JSON_OPTION, nodeDir, reqStr, str, type Command } from '../command.js';
import { printJson, println, UsageError } from '../io.js';
import { withStore } from '../node-dir.js';

const create: Command = {
  path: ['tokens', 'create'],
  summary: 'Create a local API token and print its secret once (only its SHA-256 is stored).',
  details: [
    'caseworker: consents, messages, inbox, threads. administrator: peers, agreements, tokens.',
    'auditor: the audit log. A running node accepts the token at once.',
  ].join('\n'),
  options: {
    dir: DIR_OPTION,
    role: { type: 'string', placeholder: TOKEN_ROLES.join('|'), description: 'The role the token grants', required: true },
    label: { type: 'string', placeholder: 'LABEL', description: 'Who or what holds it (default: "<role> token")' },
    json: JSON_OPTION,
  },
  async run(ctx) {
    const dir = nodeDir(ctx, 'tokens create');
    const role = reqStr(ctx, 'role', 'tokens create');
    if (!(TOKEN_ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${TOKEN_ROLES.join(', ')}`, 'tokens create', 'SCHEMA_INVALID');
    const label = str(ctx, 'label') ?? `${role} token`;
    const token = await withStore(dir, (store) => createToken(store, role as TokenRole, label));
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, token);
      return;
    }
    println(ctx.io.stdout, `token id  ${token.id}`);
    println(ctx.io.stdout, `role      ${token.role}`);
    println(ctx.io.stdout, `label     ${token.label}`);
    println(ctx.io.stdout, `secret    ${token.secret}`);
    println(ctx.io.stderr, 'The secret is shown only now; use it as "Authorization: Bearer <secret>".');
  },
};

const ls: Command = {
  path: ['tokens', 'list'],
  summary: 'List local API tokens (ids, roles, labels; never secrets).',
  options: { dir: DIR_OPTION, json: JSON_OPTION },
  async run(ctx) {
    const dir = nodeDir(ctx, 'tokens list');
    const tokens = (await withStore(dir, (store) => store.listTokens())).map(({ hash: _hash, ...t }) => t);
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, { tokens });
      return;
    }
    if (tokens.length === 0) println(ctx.io.stdout, 'No tokens. Create one with: passerelle tokens create --dir DIR --role administrator');
    for (const t of tokens) println(ctx.io.stdout, `${t.id}  ${t.role.padEnd(13)}  ${t.revokedAt ? `revoked ${t.revokedAt}` : 'active'}  ${t.label}`);
  },
};

const revoke: Command = {
  path: ['tokens', 'revoke'],
  summary: 'Revoke a local API token; a running node refuses it from the next request.',
  options: { dir: DIR_OPTION, id: { type: 'string', placeholder: 'TOKEN_ID', description: 'The token id (not its secret)', required: true } },
  async run(ctx) {
    const dir = nodeDir(ctx, 'tokens revoke');
    const id = reqStr(ctx, 'id', 'tokens revoke');
    await withStore(dir, (store) => revokeToken(store, id));
    println(ctx.io.stdout, `Revoked ${id}`);
  },
};

export const tokensCommands: Command[] = [create, ls, revoke];
