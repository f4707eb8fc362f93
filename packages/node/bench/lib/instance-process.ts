/**
 * One benchmark node in a process of its own: `instance-process <dir>`, driven over the IPC
 * channel by remote-node.ts. It sends what it is told to send and reports the node's events back;
 * its logs go to /dev/null like the in-process nodes'.
 */
import { pino } from 'pino';
import { startNode, type NodeEventName, type SendInput } from '../../src/index.js';

type Command = { op: 'send'; tag: number; input: SendInput } | { op: 'close' };

const dir = process.argv[2];
if (!dir || !process.send) {
  process.stderr.write('usage: instance-process <node directory> (with an IPC channel)\n');
  process.exit(2);
}
const post = (message: unknown) => process.send!(message);

const node = await startNode({ dir, logDestination: pino.destination({ dest: '/dev/null', sync: false }) });
const forwarded: NodeEventName[] = ['outbox.delivered', 'outbox.rejected', 'outbox.failed', 'outbox.cancelled', 'inbox.accepted'];
for (const name of forwarded) node.events.on(name, (payload: unknown) => post({ op: 'event', name, payload }));

process.on('message', (command: Command) => {
  if (command.op === 'send') {
    node.send(command.input).then(
      (queued) => post({ op: 'sent', tag: command.tag, id: queued.id }),
      (error: unknown) => post({ op: 'failed', tag: command.tag, message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (command.op === 'close') {
    node.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  }
});
post({ op: 'ready', id: node.id });
