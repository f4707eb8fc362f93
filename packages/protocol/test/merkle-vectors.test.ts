import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  MerkleTree,
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  rootHash,
  verifyConsistency,
  verifyInclusion,
} from '../src/audit/index.js';

interface Vector {
  comment: string;
  tags: string[];
  input: Record<string, unknown> & { op: string };
  expected: Record<string, unknown>;
}

const file = JSON.parse(readFileSync(new URL('../../../spec/vectors/merkle.json', import.meta.url), 'utf8')) as {
  leafRules: Record<string, string>;
  vectors: Vector[];
};

const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// One tree for every vector that names the u16le rule: its prefixes are the smaller trees.
const U16LE_MAX = 65535;
let u16: MerkleTree | undefined;
function u16Tree(): MerkleTree {
  u16 ??= new MerkleTree(Array.from({ length: U16LE_MAX }, (_, i) => leafHash(Uint8Array.of(i & 0xff, (i >> 8) & 0xff))));
  return u16;
}

function leafHashesOf(input: Vector['input'], size: number): Uint8Array[] {
  if (Array.isArray(input.leaves)) return (input.leaves as string[]).map((d) => leafHash(fromHex(d)));
  expect(input.leafRule).toBe('u16le');
  const tree = u16Tree();
  return Array.from({ length: size }, (_, i) => tree.leaf(i));
}

function run(v: Vector): void {
  const { input, expected } = v;
  switch (input.op) {
    case 'leaf-hash':
      expect(toHex(leafHash(fromHex(input.data as string)))).toBe(expected.hash);
      return;
    case 'node-hash':
      expect(toHex(nodeHash(fromHex(input.left as string), fromHex(input.right as string)))).toBe(expected.hash);
      return;
    case 'root': {
      if (input.leafRule === 'u16le') {
        expect(toHex(u16Tree().root(input.size as number))).toBe(expected.root);
      } else {
        const hashes = leafHashesOf(input, 0);
        expect(toHex(rootHash(hashes))).toBe(expected.root);
        expect(toHex(new MerkleTree(hashes).root())).toBe(expected.root);
      }
      return;
    }
    case 'inclusion-proof': {
      const size = input.size as number;
      const index = input.index as number;
      const path = input.leafRule === 'u16le' ? u16Tree().inclusionProof(index, size) : inclusionProof(leafHashesOf(input, size), index, size);
      expect(path.map(toHex)).toEqual(expected.path);
      return;
    }
    case 'consistency-proof': {
      const oldSize = input.oldSize as number;
      const newSize = input.newSize as number;
      const proof =
        input.leafRule === 'u16le' ? u16Tree().consistencyProof(oldSize, newSize) : consistencyProof(leafHashesOf(input, newSize), oldSize, newSize);
      expect(proof.map(toHex)).toEqual(expected.proof);
      return;
    }
    case 'verify-inclusion':
      expect(
        verifyInclusion(
          fromHex(input.leafHash as string),
          input.index as number,
          input.size as number,
          (input.path as string[]).map(fromHex),
          fromHex(input.root as string),
        ),
      ).toBe(expected.valid);
      return;
    case 'verify-consistency':
      expect(
        verifyConsistency(
          input.oldSize as number,
          input.newSize as number,
          fromHex(input.oldRoot as string),
          fromHex(input.newRoot as string),
          (input.proof as string[]).map(fromHex),
        ),
      ).toBe(expected.valid);
      return;
    default:
      throw new Error(`unknown op ${input.op}`);
  }
}

describe('spec/vectors/merkle.json', () => {
  it('covers every operation, with valid and invalid verifications', () => {
    const ops = new Set(file.vectors.map((v) => v.input.op));
    expect([...ops].sort()).toEqual(
      ['consistency-proof', 'inclusion-proof', 'leaf-hash', 'node-hash', 'root', 'verify-consistency', 'verify-inclusion'].sort(),
    );
    expect(file.vectors.some((v) => v.tags.includes('invalid') && v.input.op === 'verify-inclusion')).toBe(true);
    expect(file.vectors.some((v) => v.tags.includes('invalid') && v.input.op === 'verify-consistency')).toBe(true);
  });

  it.each(file.vectors.map((v) => [v.comment, v] as const))('%s', (_comment, v) => {
    run(v);
  });

  it('every generated proof also verifies against the vector roots', () => {
    for (const v of file.vectors) {
      if (v.input.op !== 'inclusion-proof' || v.input.leafRule === 'u16le') continue;
      const size = v.input.size as number;
      const index = v.input.index as number;
      const hashes = leafHashesOf(v.input, size);
      expect(verifyInclusion(hashes[index]!, index, size, (v.expected.path as string[]).map(fromHex), rootHash(hashes))).toBe(true);
    }
  });
});
