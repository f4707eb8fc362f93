/**
 * WAL checkpoints for the SQLite store, run on a worker thread with a connection of its own.
 *
 * SQLite checkpoints the write-ahead log automatically inside the COMMIT that crosses
 * `wal_autocheckpoint` pages: that commit copies about a thousand pages into the database file
 * and syncs it, synchronously, with the node's event loop stalled meanwhile (about half of all
 * COMMIT time under load, measured). The store turns automatic checkpoints off on its writer
 * and asks this thread for a PASSIVE checkpoint every so many commits instead (scaled so that each
 * finds about as many pages as SQLite's own default would): PASSIVE never blocks
 * the writer or the readers and copies only frames that no reader still needs, so it can run
 * concurrently on the other connection. Durability is unchanged: what a checkpoint copies was
 * already synced in the log (the store syncs the log itself before answering, see sqlite.ts),
 * and SQLite syncs the log before and the database file after each checkpoint.
 *
 * The thread runs plain JavaScript (`eval`), so it needs no loader in development and no build
 * step of its own. Should it fail to start or die, the store turns automatic checkpoints back on
 * and carries on as before: checkpoints are housekeeping, never a reason to refuse a write.
 */
import { Worker } from 'node:worker_threads';

/** Commits that changed something before the first checkpoint request; adapted after each checkpoint. */
export const COMMITS_PER_CHECKPOINT = 16;
/**
 * Log frames (pages) a checkpoint should find, as SQLite's own default (`wal_autocheckpoint`
 * 1000): the interval in commits is scaled after each checkpoint so that checkpoints copy about
 * this many pages, whatever the size of the commits. Checkpointing much more often would only
 * multiply the syncs of the database file, which delay the syncs of the log the node waits for.
 */
export const TARGET_FRAMES_PER_CHECKPOINT = 1000;
const MIN_COMMITS = 4;
const MAX_COMMITS = 4096;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.path, { timeout: 0 });
db.exec('PRAGMA busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
parentPort.on('message', (msg) => {
  if (msg === 'close') { db.close(); parentPort.close(); return; }
  let frames = -1;
  try {
    const row = checkpoint.get();
    frames = Number(row && row.log);
  } catch {
    // SQLITE_BUSY or LOCKED: another checkpoint (another process) is running; the next request retries.
  }
  parentPort.postMessage({ frames });
});
`;

export class WalCheckpointer {
  readonly #path: string;
  readonly #onFailure: (error: unknown) => void;
  #worker: Worker | undefined;
  #inFlight = false;
  #pendingCommits = 0;
  #commitsPerCheckpoint = COMMITS_PER_CHECKPOINT;
  #failed = false;
  #closed = false;
  #completed = 0;

  constructor(path: string, onFailure: (error: unknown) => void) {
    this.#path = path;
    this.#onFailure = onFailure;
  }

  /** Checkpoints completed (tests and diagnostics). */
  get completed(): number {
    return this.#completed;
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** Commits between two checkpoint requests at present (adapted to the frames each checkpoint finds). */
  get commitsPerCheckpoint(): number {
    return this.#commitsPerCheckpoint;
  }

  /** Counts a commit that changed the log; asks for a checkpoint once enough of them have accumulated. */
  committed(): void {
    if (this.#failed || this.#closed) return;
    this.#pendingCommits += 1;
    if (this.#pendingCommits >= this.#commitsPerCheckpoint) this.request();
  }

  /** Asks for a checkpoint now (one at a time; a request while one runs is folded into the next). */
  request(): void {
    if (this.#failed || this.#closed || this.#inFlight) return;
    let worker: Worker;
    try {
      worker = this.#worker ?? this.#start();
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.#inFlight = true;
    this.#pendingCommits = 0;
    worker.postMessage('checkpoint');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    // Unreferenced, the thread would not keep the event loop alive: a process with nothing else
    // left to do would end while this waits (exit code 13), before the store finished closing.
    worker.ref();
    worker.postMessage('close');
    await exited;
  }

  #start(): Worker {
    // The thread is started on the first request only: most stores (tests, a quiet node) never need one.
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path: this.#path }, name: 'passerelle-wal-checkpoint' });
    worker.unref();
    worker.on('message', ({ frames }: { frames: number }) => {
      this.#completed += 1;
      this.#inFlight = false;
      if (frames > 0) {
        const scaled = Math.round((this.#commitsPerCheckpoint * TARGET_FRAMES_PER_CHECKPOINT) / frames);
        this.#commitsPerCheckpoint = Math.min(MAX_COMMITS, Math.max(MIN_COMMITS, scaled));
      }
      if (this.#pendingCommits >= this.#commitsPerCheckpoint) this.request();
    });
    worker.on('error', (error) => this.#fail(error));
    worker.on('exit', (code) => {
      if (!this.#closed && this.#worker === worker) this.#fail(new Error(`checkpoint thread exited with code ${code}`));
    });
    this.#worker = worker;
    return worker;
  }

  #fail(error: unknown): void {
    if (this.#failed || this.#closed) return;
    this.#failed = true;
    this.#inFlight = false;
    const worker = this.#worker;
    this.#worker = undefined;
    void worker?.terminate();
    this.#onFailure(error);
  }
}
