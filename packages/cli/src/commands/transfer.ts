/**
 * `passerelle export | import`: offline transfer files (spec/node.md §7). The same sealed messages
 * that would be POSTed, carried as a file where there is no network; the receiving node answers
 * with a file of signed receipts that the sending node imports in turn.
 */
import { readFile } from 'node:fs/promises';
import { TRANSFER_ANSWER_FORMAT, TRANSFER_FORMAT } from '@passerelle/node';
import { isNodeId, ProtocolError } from '@passerelle/protocol';
import { DIR_OPTION, flag, JSON_OPTION, nodeDir, reqStr, str, type Command } from '../command.js';
import { printJson, println, UsageError } from '../io.js';
import { requireFile, withOfflineNode } from '../node-dir.js';

const exportCommand: Command = {
  path: ['export'],
  summary: 'Write the messages queued for a peer to a transfer file, to carry where there is no network.',
  details: [
    'The file holds the sealed messages exactly as they would be sent, with a manifest signed by this',
    'node that binds each one by digest. They stay queued until the peer\'s answer file is imported',
    '(passerelle import --file ANSWER) or they are delivered over the network meanwhile.',
  ].join('\n'),
  options: {
    dir: DIR_OPTION,
    peer: { type: 'string', placeholder: 'NODE_ID', description: 'The pinned peer the messages are for', required: true },
    out: { type: 'string', placeholder: 'FILE', description: 'The transfer file to write (mode 0600)', required: true },
    json: JSON_OPTION,
  },
  async run(ctx) {
    const dir = nodeDir(ctx, 'export');
    const peer = reqStr(ctx, 'peer', 'export');
    if (!isNodeId(peer)) throw new UsageError(`--peer must be a node id: ${peer}`, 'export', 'SCHEMA_INVALID');
    const out = ctx.path(reqStr(ctx, 'out', 'export'));
    const result = await withOfflineNode(dir, (node) => node.exportForPeer(peer, out));
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, result);
      return;
    }
    println(ctx.io.stdout, `Wrote ${result.messages.length} message${result.messages.length === 1 ? '' : 's'} for ${peer} to ${result.file}`);
    for (const id of result.messages) println(ctx.io.stdout, `  ${id}`);
    if (result.messages.length === 0) println(ctx.io.stderr, 'note: nothing is queued for this peer');
  },
};

async function formatOf(file: string): Promise<string | undefined> {
  try {
    const head = JSON.parse(await readFile(file, 'utf8')) as { format?: unknown };
    return typeof head.format === 'string' ? head.format : undefined;
  } catch {
    throw new ProtocolError('MALFORMED', `${file} is not a JSON transfer file`);
  }
}

const importCommand: Command = {
  path: ['import'],
  summary: "Import a peer's transfer file (writing an answer file of signed receipts), or a peer's answer file.",
  details: [
    'A transfer file: each message goes through the same checks as on the network (pinned sender,',
    'signatures, consent, agreement) and is stored once; the receipts go to --answer (default',
    '<file>.answer.json), to be carried back. An answer file: messages this node exported are ended',
    'by the peer\'s signed receipts.',
  ].join('\n'),
  options: {
    dir: DIR_OPTION,
    file: { type: 'string', placeholder: 'FILE', description: 'A transfer file or an answer file', required: true },
    answer: { type: 'string', placeholder: 'FILE', description: 'Where to write the answer file (transfer files only)' },
    json: JSON_OPTION,
  },
  async run(ctx) {
    const dir = nodeDir(ctx, 'import');
    const file = ctx.path(reqStr(ctx, 'file', 'import'));
    await requireFile(file);
    const format = await formatOf(file);
    if (format === TRANSFER_FORMAT) {
      const answer = ctx.path(str(ctx, 'answer') ?? `${file.replace(/\.json$/, '')}.answer.json`);
      const result = await withOfflineNode(dir, (node) => node.importTransfer(file, answer));
      if (flag(ctx, 'json')) {
        printJson(ctx.io.stdout, result);
        return;
      }
      println(ctx.io.stdout, `Imported a transfer file from ${result.from}`);
      println(ctx.io.stdout, `  accepted   ${result.accepted.length}`);
      println(ctx.io.stdout, `  duplicates ${result.duplicates.length}`);
      println(ctx.io.stdout, `  rejected   ${result.rejected.length}`);
      for (const r of result.rejected) println(ctx.io.stdout, `    ${r.id}  ${r.code}`);
      println(ctx.io.stdout, `Answer file (carry it back to ${result.from}): ${result.answerFile}`);
      return;
    }
    if (format === TRANSFER_ANSWER_FORMAT) {
      if (str(ctx, 'answer') !== undefined) throw new UsageError('--answer applies to transfer files, not to answer files', 'import');
      const result = await withOfflineNode(dir, (node) => node.importTransferAnswer(file));
      if (flag(ctx, 'json')) {
        printJson(ctx.io.stdout, result);
        return;
      }
      println(ctx.io.stdout, 'Imported an answer file');
      for (const [k, v] of Object.entries(result)) println(ctx.io.stdout, `  ${k.padEnd(12)} ${(v as string[]).length}`);
      if (result.busy.length > 0) println(ctx.io.stderr, 'note: some messages were being delivered; import the answer file again later');
      return;
    }
    throw new ProtocolError('WRONG_TYPE', `${file} is neither a transfer file (${TRANSFER_FORMAT}) nor an answer file (${TRANSFER_ANSWER_FORMAT})`);
  },
};

export const transferCommands: Command[] = [exportCommand, importCommand];
