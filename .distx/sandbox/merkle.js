// A tenant's audit log as an RFC 9162 Merkle tree (§2.1), the way a transparency log stores it: every
// level of the tree kept as a flat array of 32-byte nodes (level 0 = leaf hashes), so a full subtree's hash
// is read, never recomputed, and a proof costs O(log n) reads. This is what tlog-tiles (c2sp.org/tlog-tiles)
// serves in 256-node tiles; here the levels stay in memory.
//
//   leaf hash  = SHA-256(0x00 || leaf data)
//   node hash  = SHA-256(0x01 || left || right)
//   MTH({})    = SHA-256()
//
// Written on its own, from RFC 9162's definitions: the sandbox imports nothing from src/.
import { createHash } from 'node:crypto';
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);
export const EMPTY_ROOT = createHash('sha256').digest();
export function leafHash(data) {
    return createHash('sha256').update(LEAF).update(data).digest();
}
export function nodeHash(left, right) {
    return createHash('sha256').update(NODE).update(left).update(right).digest();
}
/** The largest power of two smaller than n (n > 1): RFC 9162's k. */
function split(n) {
    let k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}
/** One level of the tree: nodes of 32 bytes in one growing buffer (no object per node). */
class Level {
    buf = Buffer.alloc(32 * 1024);
    count = 0;
    push(h) {
        if ((this.count + 1) * 32 > this.buf.length) {
            const bigger = Buffer.alloc(this.buf.length * 2);
            this.buf.copy(bigger, 0, 0, this.count * 32);
            this.buf = bigger;
        }
        h.copy(this.buf, this.count * 32);
        this.count += 1;
    }
    at(i) {
        return this.buf.subarray(i * 32, i * 32 + 32);
    }
}
export class MerkleTree {
    #levels = [new Level()];
    get size() {
        return this.#levels[0].count;
    }
    append(leaf) {
        let h = leaf;
        let level = 0;
        for (;;) {
            const l = this.#levels[level] ?? new Level();
            this.#levels[level] = l;
            l.push(h);
            // A completed pair makes the parent's node.
            if (l.count % 2 === 1)
                return;
            h = nodeHash(l.at(l.count - 2), l.at(l.count - 1));
            level += 1;
        }
    }
    /** Drops every leaf from index `size` on (a test fault: a log that forgets, or rewrites from there). */
    truncate(size) {
        let n = size;
        for (const l of this.#levels) {
            l.count = Math.min(l.count, n);
            n = Math.floor(n / 2);
        }
    }
    leaf(index) {
        return Buffer.from(this.#levels[0].at(index));
    }
    /** MTH(D[start:end]) (RFC 9162 §2.1.1), reading stored nodes for every full, aligned subtree. */
    hash(start, end) {
        const n = end - start;
        if (n === 0)
            return EMPTY_ROOT;
        if ((n & (n - 1)) === 0 && start % n === 0) {
            const level = Math.log2(n);
            return Buffer.from(this.#levels[level].at(start / n));
        }
        const k = split(n);
        return nodeHash(this.hash(start, start + k), this.hash(start + k, end));
    }
    root(size = this.size) {
        return this.hash(0, size);
    }
    /** PATH(m, D[0:n]) of RFC 9162 §2.1.3.1. */
    inclusion(index, size) {
        if (!(index >= 0 && index < size && size <= this.size))
            throw new RangeError('no such leaf in that tree');
        const path = [];
        const walk = (m, start, end) => {
            const n = end - start;
            if (n === 1)
                return;
            const k = split(n);
            if (m < k) {
                walk(m, start, start + k);
                path.push(this.hash(start + k, end));
            }
            else {
                walk(m - k, start + k, end);
                path.push(this.hash(start, start + k));
            }
        };
        walk(index, 0, size);
        return path;
    }
    /** PROOF(m, D[0:n]) of RFC 9162 §2.1.4.1. */
    consistency(first, second) {
        if (!(first >= 0 && first <= second && second <= this.size))
            throw new RangeError('no such tree sizes');
        const proof = [];
        if (first === 0 || first === second)
            return proof;
        const sub = (m, start, end, whole) => {
            const n = end - start;
            if (m === n) {
                if (!whole)
                    proof.push(this.hash(start, end));
                return;
            }
            const k = split(n);
            if (m <= k) {
                sub(m, start, start + k, whole);
                proof.push(this.hash(start + k, end));
            }
            else {
                sub(m - k, start + k, end, false);
                proof.push(this.hash(start, start + k));
            }
        };
        sub(first, 0, second, true);
        return proof;
    }
}
