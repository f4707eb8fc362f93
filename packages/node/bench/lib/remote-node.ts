/**
 * The parent's side of instance-process.ts: a node running in a child process, offering what the
 * load driver needs of it (send, events) with the same shapes as a RunningNode.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { NodeEventMap, SendInput } from '../../src/index.js';

const ENTRY = fileURLToPath(new URL('./instance-process.ts', import.meta.url));

type Reply =
  | { op: 'ready'; id: string }
  | { op: 'sent'; tag: number; id: string }
  | { op: 'failed'; tag: number; message: string }
  | { op: 'event'; name: keyof NodeEventMap; payload: unknown };

export class RemoteNode {
  readonly events = new EventEmitter<NodeEventMap>();
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve: (v: { id: string }) => void; reject: (e: Error) => void }>();
  #tag = 0;
  id = '';

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async start(dir: string): Promise<RemoteNode> {
    const child = fork(ENTRY, [dir], { execArgv: ['--conditions=@passerelle/source', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const node = new RemoteNode(child);
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the node in ${dir} exited with ${code}`)));
      child.on('message', (reply: Reply) => {
        if (reply.op === 'ready') {
          node.id = reply.id;
          resolve();
        } else if (reply.op === 'event') {
          node.events.emit(reply.name, reply.payload as never);
        } else {
          const w = node.#waiting.get(reply.tag);
          node.#waiting.delete(reply.tag);
          if (reply.op === 'sent') w?.resolve({ id: reply.id });
          else w?.reject(new Error(reply.message));
        }
      });
    });
    return node;
  }

  send(input: SendInput): Promise<{ id: string }> {
    const tag = ++this.#tag;
    return new Promise((resolve, reject) => {
      this.#waiting.set(tag, { resolve, reject });
      this.#child.send({ op: 'send', tag, input });
    });
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.removeAllListeners('exit');
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.send({ op: 'close' });
    await exited;
  }
}
