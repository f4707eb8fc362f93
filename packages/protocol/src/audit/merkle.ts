/**
 * The Merkle Tree Hash of RFC 9162 §2.1 (the tree of RFC 6962 §2.1) with SHA-256: the shape of
 * every node's append-only audit log. Leaves and interior nodes are domain-separated by a one-byte
 * prefix (RFC 9162 §2.1.1), so a leaf can never be passed off as a subtree or the reverse.
 *
 * Style: `verify*` answer with a boolean and never throw on hostile input; `assert*` throw
 * ProtocolError AUDIT_PROOF_INVALID. Proof generators throw RangeError when asked for a leaf or a
 * tree size the caller does not hold: that is a bug at the call site, not a protocol failure.
 */
import { ProtocolError } from '../errors.js';
import { sha256Sync } from '../sha256.js';

export const MERKLE_HASH_SIZE = 32;

/**
 * Upper bound on the number of elements in any proof accepted or produced. RFC 9162 proofs grow
 * with the logarithm of the tree size; tree sizes are safe integers, so a longer proof is never
 * valid and is refused before any hashing.
 */
export const MAX_PROOF_LENGTH = 64;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

const EMPTY_ROOT = sha256Sync(new Uint8Array(0));

// Interior hashing dominates proof verification; one reused input buffer saves an allocation per
// node. sha256Sync copies its input before returning, so reuse is safe.
const nodeInput = new Uint8Array(1 + 2 * MERKLE_HASH_SIZE);
nodeInput[0] = NODE_PREFIX;

/** MTH of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1). A fresh copy each call. */
export function emptyRoot(): Uint8Array {
  return EMPTY_ROOT.slice();
}

/** Leaf hash: SHA-256(0x00 || data) (RFC 9162 §2.1.1). */
export function leafHash(data: Uint8Array): Uint8Array {
  const input = new Uint8Array(1 + data.length);
  input[0] = LEAF_PREFIX;
  input.set(data, 1);
  return sha256Sync(input);
}

/** Interior node hash: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length === MERKLE_HASH_SIZE && right.length === MERKLE_HASH_SIZE) {
    nodeInput.set(left, 1);
    nodeInput.set(right, 1 + MERKLE_HASH_SIZE);
    return sha256Sync(nodeInput);
  }
  const input = new Uint8Array(1 + left.length + right.length);
  input[0] = NODE_PREFIX;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return sha256Sync(input);
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === MERKLE_HASH_SIZE;
}

function isPath(value: unknown): value is readonly Uint8Array[] {
  return Array.isArray(value) && value.length <= MAX_PROOF_LENGTH && value.every(isHash);
}

function isSize(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

// Sizes may exceed 2^32 on the wire, where bitwise operators would truncate; plain arithmetic is
// exact for every safe integer.
function half(x: number): number {
  return Math.floor(x / 2);
}

function isOdd(x: number): boolean {
  return x % 2 === 1;
}

/** The largest power of two strictly smaller than n (n ≥ 2): the split point `k` of RFC 9162 §2.1.1. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && splitPoint(n + 1) === n;
}

function checkRange(condition: boolean, message: string): void {
  if (!condition) throw new RangeError(message);
}

/**
 * Incremental tree head over a growing log in O(log n) memory: the roots of the perfect subtrees
 * that make up the tree (its "frontier" or compact range), largest first. Appending merges equal
 * subtrees like a binary counter; the root folds the frontier from the right, exactly as the
 * recursive MTH definition splits at the largest power of two (RFC 9162 §2.1.1).
 */
export class MerkleAccumulator {
  #size = 0;
  #frontier: Uint8Array[] = [];

  /**
   * Resumes from a stored frontier (for example persisted beside the log), so that a node keeps its
   * root current without re-reading every leaf. Throws RangeError when the frontier cannot belong to
   * a tree of this size.
   */
  static fromFrontier(size: number, frontier: readonly Uint8Array[]): MerkleAccumulator {
    checkRange(isSize(size), 'size must be a non-negative safe integer');
    let bits = 0;
    for (let s = size; s > 0; s = half(s)) if (isOdd(s)) bits++;
    checkRange(frontier.length === bits && frontier.every(isHash), 'frontier does not match the tree size');
    const acc = new MerkleAccumulator();
    acc.#size = size;
    acc.#frontier = frontier.map((h) => h.slice());
    return acc;
  }

  get size(): number {
    return this.#size;
  }

  append(leafHashValue: Uint8Array): void {
    checkRange(isHash(leafHashValue), 'a leaf hash is 32 bytes');
    checkRange(this.#size < Number.MAX_SAFE_INTEGER, 'tree is full');
    let hash: Uint8Array = leafHashValue.slice();
    for (let s = this.#size; isOdd(s); s = half(s)) hash = nodeHash(this.#frontier.pop()!, hash);
    this.#frontier.push(hash);
    this.#size++;
  }

  /** MTH of every leaf appended so far (the empty-tree hash before the first). */
  root(): Uint8Array {
    const f = this.#frontier;
    if (f.length === 0) return emptyRoot();
    let hash: Uint8Array = f[f.length - 1]!.slice();
    for (let i = f.length - 2; i >= 0; i--) hash = nodeHash(f[i]!, hash);
    return hash;
  }

  /** Copies of the perfect-subtree roots, largest first: what `fromFrontier` takes back. */
  frontier(): Uint8Array[] {
    return this.#frontier.map((h) => h.slice());
  }
}

const EDGE_CACHE_LIMIT = 4096;

interface Level {
  bytes: Uint8Array;
  count: number;
}

/**
 * A log's leaf hashes with every perfect subtree hash cached, level by level, in flat buffers
 * (about twice the leaf storage: 100,000 leaves take some 6.4 MB). Building costs one hash per
 * interior node, once; then the root of any prefix costs O(log n) hashes and so does every
 * inclusion or consistency proof, so serving many proofs never re-hashes the log.
 */
export class MerkleTree {
  #levels: Level[] = [];
  // Hashes of ranges that are not one perfect subtree (a tree's right edge). A given tree size has
  // only O(log n) of them and every proof at that size reuses them; a range over existing leaves
  // never changes, so entries stay valid as the log grows.
  #edges = new Map<string, Uint8Array>();

  constructor(leafHashes: Iterable<Uint8Array> = []) {
    for (const h of leafHashes) this.append(h);
  }

  get size(): number {
    return this.#levels[0]?.count ?? 0;
  }

  /** Appends a leaf hash and returns its index. */
  append(leafHashValue: Uint8Array): number {
    checkRange(isHash(leafHashValue), 'a leaf hash is 32 bytes');
    checkRange(this.size < 0x7fffffff, 'tree is full');
    const index = this.size;
    this.#push(0, leafHashValue);
    // A node completes its parent when it is a right child (odd index).
    for (let level = 0, i = index; i % 2 === 1; level++, i >>>= 1) {
      this.#push(level + 1, nodeHash(this.#node(level, i - 1), this.#node(level, i)));
    }
    return index;
  }

  /** A copy of the leaf hash at `index`. */
  leaf(index: number): Uint8Array {
    checkRange(Number.isSafeInteger(index) && index >= 0 && index < this.size, 'leaf index out of range');
    return this.#node(0, index).slice();
  }

  /** MTH of the first `size` leaves (default: all of them). */
  root(size: number = this.size): Uint8Array {
    checkRange(isSize(size) && size <= this.size, 'tree size out of range');
    return this.#range(0, size).slice();
  }

  /** Audit path for leaf `index` in the tree of the first `size` leaves (RFC 9162 §2.1.3.1, PATH). */
  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    checkRange(isSize(size) && size <= this.size, 'tree size out of range');
    checkRange(Number.isSafeInteger(index) && index >= 0 && index < size, 'leaf index out of range');
    const path: Uint8Array[] = [];
    let start = 0;
    let end = size;
    // PATH recurses into the half holding the leaf and appends the other half's MTH on the way
    // out, so walking down collects the path root-side first.
    while (end - start > 1) {
      const k = splitPoint(end - start);
      if (index < start + k) {
        path.push(this.#range(start + k, end).slice());
        end = start + k;
      } else {
        path.push(this.#range(start, start + k).slice());
        start += k;
      }
    }
    return path.reverse();
  }

  /**
   * Consistency proof from the tree of the first `oldSize` leaves to that of the first `newSize`
   * (RFC 9162 §2.1.4.1, PROOF and SUBPROOF). Empty when oldSize is 0 or equals newSize: any tree
   * extends the empty tree, and a tree is consistent with itself iff the roots are equal.
   */
  consistencyProof(oldSize: number, newSize: number = this.size): Uint8Array[] {
    checkRange(isSize(newSize) && newSize <= this.size, 'tree size out of range');
    checkRange(isSize(oldSize) && oldSize <= newSize, 'old size out of range');
    const proof: Uint8Array[] = [];
    if (oldSize === 0 || oldSize === newSize) return proof;
    let start = 0;
    let end = newSize;
    let m = oldSize;
    let complete = true;
    for (;;) {
      const n = end - start;
      if (m === n) {
        // SUBPROOF(m, D[m], true) is empty: the verifier already holds that root.
        if (!complete) proof.push(this.#range(start, end).slice());
        break;
      }
      const k = splitPoint(n);
      if (m <= k) {
        proof.push(this.#range(start + k, end).slice());
        end = start + k;
      } else {
        proof.push(this.#range(start, start + k).slice());
        start += k;
        m -= k;
        complete = false;
      }
    }
    return proof.reverse();
  }

  #push(level: number, hash: Uint8Array): void {
    let l = this.#levels[level];
    if (!l) {
      l = { bytes: new Uint8Array(64 * MERKLE_HASH_SIZE), count: 0 };
      this.#levels[level] = l;
    }
    const offset = l.count * MERKLE_HASH_SIZE;
    if (offset + MERKLE_HASH_SIZE > l.bytes.length) {
      const grown = new Uint8Array(l.bytes.length * 2);
      grown.set(l.bytes);
      l.bytes = grown;
    }
    l.bytes.set(hash, offset);
    l.count++;
  }

  /** A view (not a copy) of the cached perfect subtree `index` at `level`. */
  #node(level: number, index: number): Uint8Array {
    const offset = index * MERKLE_HASH_SIZE;
    return this.#levels[level]!.bytes.subarray(offset, offset + MERKLE_HASH_SIZE);
  }

  /**
   * MTH(D[start:end]) for the ranges the RFC 9162 recursion visits: `start` is aligned to a power of
   * two at least as large as the range, so the range is a run of cached perfect subtrees of
   * decreasing size (the binary digits of its length), folded from the right.
   */
  #range(start: number, end: number): Uint8Array {
    const length = end - start;
    if (length === 0) return EMPTY_ROOT;
    if ((length & (length - 1)) === 0) return this.#node(31 - Math.clz32(length), start / length);
    const key = `${start}:${end}`;
    const cached = this.#edges.get(key);
    if (cached) return cached;
    const parts: Uint8Array[] = [];
    let pos = start;
    for (let level = 31 - Math.clz32(length); level >= 0; level--) {
      if ((length >>> level) & 1) {
        parts.push(this.#node(level, pos >>> level));
        pos += 1 << level;
      }
    }
    let hash = parts[parts.length - 1]!;
    for (let i = parts.length - 2; i >= 0; i--) hash = nodeHash(parts[i]!, hash);
    if (this.#edges.size >= EDGE_CACHE_LIMIT) this.#edges.clear();
    this.#edges.set(key, hash);
    return hash;
  }
}

/** MTH over leaf hashes (RFC 9162 §2.1.1), in one pass and O(log n) memory. */
export function rootHash(leafHashes: readonly Uint8Array[]): Uint8Array {
  const acc = new MerkleAccumulator();
  for (const h of leafHashes) acc.append(h);
  return acc.root();
}

/**
 * Audit path for one leaf (RFC 9162 §2.1.3.1). Hashes the first `treeSize` leaves once per call;
 * to serve many proofs over the same log keep a MerkleTree instead.
 */
export function inclusionProof(leafHashes: readonly Uint8Array[], index: number, treeSize: number): Uint8Array[] {
  checkRange(isSize(treeSize) && treeSize <= leafHashes.length, 'tree size out of range');
  return new MerkleTree(leafHashes.slice(0, treeSize)).inclusionProof(index, treeSize);
}

/**
 * Consistency proof between two sizes of one log (RFC 9162 §2.1.4.1). Hashes the first `newSize`
 * leaves once per call; to serve many proofs keep a MerkleTree instead.
 */
export function consistencyProof(leafHashes: readonly Uint8Array[], oldSize: number, newSize: number): Uint8Array[] {
  checkRange(isSize(newSize) && newSize <= leafHashes.length, 'tree size out of range');
  return new MerkleTree(leafHashes.slice(0, newSize)).consistencyProof(oldSize, newSize);
}

/**
 * Whether `proof` shows that `leafHashValue` is leaf `index` of the tree of `treeSize` leaves whose
 * MTH is `root`: the algorithm of RFC 9162 §2.1.3.2, which also rejects a proof of the wrong length.
 */
export function verifyInclusion(
  leafHashValue: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isSize(index) || !isSize(treeSize) || index >= treeSize) return false;
  if (!isHash(leafHashValue) || !isHash(root) || !isPath(proof)) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r = leafHashValue;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && sameBytes(r, root);
}

/**
 * Whether `proof` shows that the tree of `newSize` leaves with MTH `newRoot` extends the tree of
 * `oldSize` leaves with MTH `oldRoot`: the algorithm of RFC 9162 §2.1.4.2. The edge cases the RFC
 * leaves to the implementation: equal sizes need an empty proof and equal roots; the empty tree
 * needs an empty proof and the empty-tree hash as its root.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize > newSize) return false;
  if (!isHash(oldRoot) || !isHash(newRoot) || !isPath(proof)) return false;
  if (oldSize === newSize) return proof.length === 0 && sameBytes(oldRoot, newRoot);
  if (oldSize === 0) return proof.length === 0 && sameBytes(oldRoot, EMPTY_ROOT);
  if (proof.length === 0) return false;
  // A complete old tree is a subtree of the new one; PROOF leaves its root out (RFC 9162 §2.1.4.2 step 2).
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = fr;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && sameBytes(fr, oldRoot) && sameBytes(sr, newRoot);
}

/** verifyInclusion, throwing AUDIT_PROOF_INVALID when the proof does not verify. */
export function assertInclusion(
  leafHashValue: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  if (!verifyInclusion(leafHashValue, index, treeSize, proof, root)) {
    throw new ProtocolError('AUDIT_PROOF_INVALID', 'Inclusion proof does not verify', { index, treeSize });
  }
}

/** verifyConsistency, throwing AUDIT_PROOF_INVALID when the proof does not verify. */
export function assertConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  if (!verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof)) {
    throw new ProtocolError('AUDIT_PROOF_INVALID', 'Consistency proof does not verify', { oldSize, newSize });
  }
}
