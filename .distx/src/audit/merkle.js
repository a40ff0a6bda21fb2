/**
 * RFC 9162 Merkle tree hashing and proof verification, for the audit log as a transparency log
 * (docs/protocol.md §5): leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right).
 *
 * The client never holds the tree. It keeps a compact range (the roots of the perfect subtrees that make
 * up [0, n), at most log2(n) + 1 hashes) and extends it with each streamed event, so the root of every size
 * it passes costs O(log n) and one proof per checkpoint suffices instead of one per event.
 */
import * as crypto from 'node:crypto';
// crypto.hash (Node >= 20.12) is a one-shot digest about twice as fast as createHash for small inputs.
const oneShot = crypto.hash;
const sha256 = oneShot
    ? (data) => oneShot('sha256', data, 'buffer')
    : (data) => crypto.createHash('sha256').update(data).digest();
export const HASH_SIZE = 32;
export const EMPTY_ROOT = sha256(Buffer.alloc(0));
/** SHA-256(0x00 || utf8(data)): the string is prefixed with U+0000, whose UTF-8 is the single byte 0x00. */
export function leafHash(data) {
    return typeof data === 'string' ? sha256(`\u0000${data}`) : sha256(Buffer.concat([Buffer.from([0]), data]));
}
const pair = Buffer.alloc(1 + 2 * HASH_SIZE);
pair[0] = 1;
export function nodeHash(left, right) {
    left.copy(pair, 1);
    right.copy(pair, 1 + HASH_SIZE);
    return sha256(pair);
}
const odd = (x) => x % 2 === 1;
const half = (x) => Math.floor(x / 2);
/**
 * RFC 9162 §2.1.3.2: does `path` prove that `leaf` is leaf `index` of the tree of `size` whose root is
 * `root`? Sizes are plain numbers (exact up to 2^53), shifted by division, never by 32-bit `>>`.
 */
export function verifyInclusion(index, size, leaf, path, root) {
    if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size))
        return false;
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of path) {
        if (sn === 0)
            return false;
        if (odd(fn) || fn === sn) {
            r = nodeHash(p, r);
            if (!odd(fn)) {
                while (!odd(fn) && fn !== 0) {
                    fn = half(fn);
                    sn = half(sn);
                }
            }
        }
        else {
            r = nodeHash(r, p);
        }
        fn = half(fn);
        sn = half(sn);
    }
    return sn === 0 && r.equals(root);
}
/**
 * RFC 9162 §2.1.4.2: does `path` prove that the tree (first, firstRoot) is a prefix of (second, secondRoot)?
 * Equal sizes need equal roots and an empty proof; size 0 is a prefix of anything.
 */
export function verifyConsistency(first, second, firstRoot, secondRoot, path) {
    if (!(Number.isSafeInteger(first) && Number.isSafeInteger(second) && first >= 0 && first <= second))
        return false;
    if (first === 0)
        return path.length === 0 && firstRoot.equals(EMPTY_ROOT);
    if (first === second)
        return path.length === 0 && firstRoot.equals(secondRoot);
    if (path.length === 0)
        return false;
    // Step 2: when the first tree is a perfect subtree of the second, its root is the proof's first node.
    const proof = isPow2(first) ? [firstRoot, ...path] : path;
    let fn = first - 1;
    let sn = second - 1;
    while (odd(fn)) {
        fn = half(fn);
        sn = half(sn);
    }
    let fr = proof[0];
    let sr = proof[0];
    for (const c of proof.slice(1)) {
        if (sn === 0)
            return false;
        if (odd(fn) || fn === sn) {
            fr = nodeHash(c, fr);
            sr = nodeHash(c, sr);
            if (!odd(fn)) {
                while (!odd(fn) && fn !== 0) {
                    fn = half(fn);
                    sn = half(sn);
                }
            }
        }
        else {
            sr = nodeHash(sr, c);
        }
        fn = half(fn);
        sn = half(sn);
    }
    return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}
/**
 * The compact range of [0, index) read off an inclusion proof of leaf `index`: in RFC 9162 trees every
 * left child is a perfect subtree, and the proof's left siblings (those hashed as `p || r` in §2.1.3.2)
 * are exactly the subtrees left of the leaf, lowest first. Lets a reader that starts mid-log (`--since`)
 * extend the tree from there. Check the proof with verifyInclusion first.
 */
export function leftSiblings(index, size, path) {
    let fn = index;
    let sn = size - 1;
    const left = [];
    for (const p of path) {
        if (odd(fn) || fn === sn) {
            left.push(p);
            if (!odd(fn)) {
                while (!odd(fn) && fn !== 0) {
                    fn = half(fn);
                    sn = half(sn);
                }
            }
        }
        fn = half(fn);
        sn = half(sn);
    }
    return left.reverse();
}
function isPow2(n) {
    let x = n;
    while (x > 1 && x % 2 === 0)
        x /= 2;
    return x === 1;
}
/**
 * The compact range of [0, size): the roots of the perfect subtrees of sizes 2^k for the bits k of size,
 * largest (leftmost) first. Appending a leaf merges equal-sized neighbours, as a binary counter carries.
 */
export class Frontier {
    /** Subtree roots, left to right. */
    nodes = [];
    /** Their heights (log2 of their leaf count), strictly decreasing. */
    heights = [];
    size = 0;
    /** Called with (height, index at that height, hash) for every perfect subtree that completes. */
    onNode;
    static from(size, nodes) {
        const f = new Frontier();
        let h = 0;
        const heights = [];
        for (let s = size; s > 0; s = half(s), h++)
            if (odd(s))
                heights.unshift(h);
        if (heights.length !== nodes.length || nodes.some((n) => n.length !== HASH_SIZE)) {
            throw new RangeError('a compact range does not match its size');
        }
        f.nodes.push(...nodes);
        f.heights.push(...heights);
        f.size = size;
        return f;
    }
    append(leaf) {
        let h = leaf;
        let height = 0;
        this.onNode?.(0, this.size, h);
        while (this.heights.length > 0 && this.heights[this.heights.length - 1] === height) {
            this.heights.pop();
            h = nodeHash(this.nodes.pop(), h);
            height += 1;
            this.onNode?.(height, Math.floor(this.size / 2 ** height), h);
        }
        this.nodes.push(h);
        this.heights.push(height);
        this.size += 1;
    }
    /** MTH of [0, size): the subtree roots folded right to left. */
    root() {
        if (this.nodes.length === 0)
            return EMPTY_ROOT;
        let r = this.nodes[this.nodes.length - 1];
        for (let i = this.nodes.length - 2; i >= 0; i--)
            r = nodeHash(this.nodes[i], r);
        return r;
    }
    clone() {
        return Frontier.from(this.size, [...this.nodes]);
    }
}
