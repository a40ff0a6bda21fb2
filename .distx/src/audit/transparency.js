/**
 * What the audit log as a transparency log proves, and how the CLI checks it (docs/protocol.md §5,
 * "Transparency log"; docs/security.md, "Audit"):
 *
 * - between runs: the new signed checkpoint is consistent with the remembered one (RFC 9162 §2.1.4), so
 *   history the CLI once verified was not rewritten, rolled back or forked;
 * - within a run: the streamed events, hashed into a tree as they arrive (merkle.ts Frontier), give the
 *   signed root at the checkpoint's size, so every event shown up to there is in the signed log — one
 *   comparison per checkpoint rather than one inclusion proof per event.
 *
 * Library code: it returns problems and never prints.
 */
import { parseProof, verifyCheckpoint, } from './checkpoint.js';
import { blockHeightFor } from './log-state.js';
import { Frontier, leafHash, nodeHash, verifyConsistency } from './merkle.js';
/** Leaves held while a mid-log start waits for its inclusion proof. */
const MAX_HELD = 100_000;
const when = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
/** One line per problem; the caller passes it through the one terminal sanitizer. */
export function describeLogProblem(p) {
    switch (p.kind) {
        case 'checkpoint':
            switch (p.failure.kind) {
                case 'malformed':
                    return `the log's checkpoint is malformed (${p.failure.why})`;
                case 'unknown-key':
                    return `the log's checkpoint is not signed by the pinned key (signed by: ${p.failure.names.join(', ') || 'none'})`;
                case 'bad-signature':
                    return "the log's checkpoint signature does not verify";
                case 'origin':
                    return `the log's checkpoint is for another log (${p.failure.origin})`;
            }
            break;
        case 'rollback':
            return `the log was rolled back: it now has ${p.got} events, but ${p.remembered} were verified at ${when(p.verifiedAt)}`;
        case 'fork':
            return `the log forked: two signed checkpoints of size ${p.size} with different roots${p.evidence ? ` (both kept in ${p.evidence})` : ''}`;
        case 'inconsistent':
            return `the log's history was rewritten: its checkpoint of ${p.to} events is not an extension of the ${p.from} verified at ${when(p.verifiedAt)}`;
        case 'proof':
            return `the log's proof is unusable (${p.why})`;
        case 'rewritten':
            return p.from === p.to
                ? `event ${p.from} differs from the one verified at ${when(p.verifiedAt)}: history was rewritten`
                : `events ${p.from}–${p.to} differ from those verified at ${when(p.verifiedAt)} (the first change is among them): history was rewritten`;
        case 'not-included':
            return `the events received are not the log the checkpoint of ${p.size} events signs`;
        case 'absent':
            return 'the control plane no longer publishes its signed log, but this profile pins its key: a downgrade to the hash chain alone';
        case 'tree-gap':
            return `events after ${p.seq - 1} cannot be checked against the log (event ${p.seq} is missing)`;
    }
}
export async function fetchCheckpoint(get, key, origin) {
    const r = await get('/audit/checkpoint');
    if (r.status !== 200)
        return { kind: 'proof', why: `the checkpoint answered HTTP ${r.status}` };
    const cp = verifyCheckpoint(r.body, key, origin);
    return 'kind' in cp ? { kind: 'checkpoint', failure: cp } : cp;
}
/**
 * Checks that `next` extends `remembered` (or the last checkpoint of this run): a smaller tree is a
 * rollback, an equal size with another root a fork, a larger one needs a consistency proof.
 */
export async function checkExtends(get, remembered, next) {
    if (next.size < remembered.size) {
        return {
            kind: 'rollback',
            remembered: remembered.size,
            got: next.size,
            verifiedAt: remembered.verifiedAt,
        };
    }
    if (next.size === remembered.size) {
        return next.root.equals(remembered.root) ? undefined : { kind: 'fork', size: next.size };
    }
    if (remembered.size === 0)
        return undefined;
    const r = await get(`/audit/proof/consistency?first=${remembered.size}&second=${next.size}`);
    if (r.status !== 200)
        return { kind: 'proof', why: `the consistency proof answered HTTP ${r.status}` };
    const path = parseProof(r.body, 'consistency_path');
    if (typeof path === 'string')
        return { kind: 'proof', why: path };
    return verifyConsistency(remembered.size, next.size, remembered.root, next.root, path)
        ? undefined
        : { kind: 'inconsistent', from: remembered.size, to: next.size, verifiedAt: remembered.verifiedAt };
}
/**
 * Hashes streamed events into the tree and compares: block by block against what the last run verified
 * (naming where a rewritten history first differs), and the root at each checkpoint's size.
 */
export class StreamTree {
    frontier = new Frontier();
    problems = [];
    /** The latest checkpoint whose root the streamed events reproduced. */
    verified;
    verifiedAt;
    #pending;
    #remembered;
    #rewriteSeen = false;
    #broken = false;
    /** Blocks are collected at this height (and compared with the remembered ones at theirs). */
    #blockHeight;
    #blocks = [];
    #now;
    #report;
    /** `size`: the current checkpoint's, which decides how coarse the remembered blocks are. */
    #onVerified;
    constructor(o) {
        this.#onVerified = o.onVerified;
        this.#remembered = o.remembered;
        this.#now = o.now;
        this.#report = o.report;
        const rem = o.remembered;
        this.#blockHeight = Math.max(blockHeightFor(o.size), rem?.blockHeight ?? 0);
        this.frontier.onNode = (height, index, hash) => {
            if (height === this.#blockHeight && !this.#midLog)
                this.#blocks.push(hash);
            if (height !== rem?.blockHeight)
                return;
            if (!this.#rewriteSeen && index < rem.blocks.length && !hash.equals(rem.blocks[index])) {
                const span = 2 ** height;
                this.#flag({
                    kind: 'rewritten',
                    from: index * span + 1,
                    to: (index + 1) * span,
                    verifiedAt: rem.verifiedAt,
                });
                this.#rewriteSeen = true;
            }
        };
    }
    #flag(p) {
        this.problems.push(p);
        this.#report(p);
    }
    get broken() {
        return this.#broken;
    }
    /** The next checkpoint to reach; the streamed root is compared with it when the stream gets there. */
    expect(cp) {
        this.#pending = cp;
        if (this.frontier.size === cp.size)
            this.#compare();
    }
    get pending() {
        return this.#pending;
    }
    /**
     * Mid-log (`--since`): leaves are held (bounded) until `seed` gives the compact range before the first
     * one; `onSeed` is told which event that is, once.
     */
    #unseeded;
    startMidLog(onSeed) {
        this.#unseeded = { first: 0, leaves: [], onSeed };
        this.#midLog = true;
    }
    /** Mid-log and no event yet: nothing shown, nothing to prove. */
    get waitingForFirst() {
        return this.#unseeded !== undefined && this.#unseeded.first === 0;
    }
    /** Started mid-log: the blocks seen do not start at event 1, so the remembered ones are kept. */
    #midLog = false;
    /** The compact range of [0, first - 1), from a verified inclusion proof of the first event held. */
    seed(frontier) {
        const u = this.#unseeded;
        if (!u || frontier.size !== u.first - 1)
            return;
        this.#unseeded = undefined;
        frontier.onNode = this.frontier.onNode;
        this.frontier = frontier;
        const leaves = u.leaves;
        for (const [i, leaf] of leaves.entries())
            this.#append(u.first + i, leaf);
    }
    /** One event, in order; `full` is its canonical JSON (chain.ts canonicalEvent). */
    add(seq, full) {
        if (this.#broken)
            return;
        const u = this.#unseeded;
        if (u && u.first === 0) {
            u.first = seq;
            u.onSeed(seq, leafHash(full)); // may seed at once (from event 1): then this event goes straight in
        }
        if (u && this.#unseeded === u) {
            if (seq !== u.first + u.leaves.length || u.leaves.length >= MAX_HELD) {
                this.#broken = true;
                this.#flag({ kind: 'tree-gap', seq: u.first + u.leaves.length });
                return;
            }
            u.leaves.push(leafHash(full));
            return;
        }
        this.#append(seq, leafHash(full));
    }
    #append(seq, leaf) {
        if (this.#broken)
            return;
        if (seq !== this.frontier.size + 1) {
            this.#broken = true;
            this.#flag({ kind: 'tree-gap', seq: this.frontier.size + 1 });
            return;
        }
        this.frontier.append(leaf);
        const f = this.frontier;
        const rem = this.#remembered;
        if (rem && f.size === rem.size && !this.#rewriteSeen && !f.root().equals(rem.root)) {
            const span = 2 ** rem.blockHeight;
            this.#flag({
                kind: 'rewritten',
                from: Math.min(rem.blocks.length * span + 1, rem.size),
                to: rem.size,
                verifiedAt: rem.verifiedAt,
            });
            this.#rewriteSeen = true;
        }
        if (this.#pending && f.size === this.#pending.size)
            this.#compare();
    }
    #compare() {
        const cp = this.#pending;
        this.#pending = undefined;
        if (this.frontier.root().equals(cp.root))
            this.#verify(cp);
        else
            this.#flag({ kind: 'not-included', size: cp.size });
    }
    #verify(cp) {
        this.verified = cp;
        this.verifiedAt = this.#now();
        this.#onVerified?.(cp);
    }
    /**
     * A checkpoint the stream has already gone past: a consistency proof from its size to the streamed
     * size, checked against the streamed root, shows the events shown up to it are in the signed tree.
     */
    async behind(cp, get) {
        const size = this.frontier.size;
        const root = this.frontier.root();
        if (this.#broken || cp.size > size)
            return;
        if (cp.size === size) {
            this.expect(cp);
            return;
        }
        const r = await get(`/audit/proof/consistency?first=${cp.size}&second=${size}`);
        if (r.status !== 200)
            return this.#flag({ kind: 'proof', why: `the consistency proof answered HTTP ${r.status}` });
        const path = parseProof(r.body, 'consistency_path');
        if (typeof path === 'string')
            return this.#flag({ kind: 'proof', why: path });
        if (verifyConsistency(cp.size, size, cp.root, root, path))
            this.#verify(cp);
        else
            this.#flag({ kind: 'not-included', size: cp.size });
    }
    /** What to remember: the last checkpoint the stream reproduced, with its compact range and blocks. */
    state(origin, vkey) {
        const cp = this.verified;
        if (!cp || this.#broken || this.problems.length > 0 || this.verifiedAt === undefined)
            return undefined;
        // The frontier may have gone past the checkpoint: rebuild the compact range at its size from blocks
        // would need the leaves, so the state keeps the range only when the stream stopped exactly there.
        const rem = this.#remembered;
        if (this.#midLog) {
            return {
                origin,
                vkey,
                note: cp.note,
                size: cp.size,
                root: cp.root,
                verifiedAt: this.verifiedAt,
                frontier: [],
                blockHeight: rem?.blockHeight ?? 0,
                blocks: rem?.blocks ?? [],
            };
        }
        const span = 2 ** this.#blockHeight;
        const blocks = this.#blocks.slice(0, Math.floor(cp.size / span));
        const height = Math.max(blockHeightFor(cp.size), this.#blockHeight);
        return {
            origin,
            vkey,
            note: cp.note,
            size: cp.size,
            root: cp.root,
            verifiedAt: this.verifiedAt,
            frontier: this.frontier.size === cp.size ? [...this.frontier.nodes] : [],
            blockHeight: height,
            blocks: coarsen(blocks, height - this.#blockHeight),
        };
    }
}
/** Block roots of height h+d from those of height h (pairs merged d times; an unpaired tail dropped). */
function coarsen(blocks, d) {
    if (d <= 0)
        return blocks;
    let level = blocks;
    for (let i = 0; i < d; i++) {
        const next = [];
        for (let j = 0; j + 1 < level.length; j += 2)
            next.push(nodeHash(level[j], level[j + 1]));
        level = next;
    }
    return level;
}
