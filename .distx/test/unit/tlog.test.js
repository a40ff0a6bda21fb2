/**
 * The transparency-log layer against independent oracles: the Certificate Transparency test vectors
 * (google/certificate-transparency merkle_tree_test.cc: eight leaves, the root of every prefix), and a
 * second, literal implementation of RFC 9162 §2.1 written here from the RFC's recursive definitions. The
 * client's verifiers (src/audit/merkle.ts) and the sandbox's tree (sandbox/merkle.ts) must agree with both;
 * the parsers of checkpoints and proofs are fuzzed with fast-check.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { Chalk } from 'chalk';
import fc from 'fast-check';
import { MerkleTree, leafHash as serverLeaf } from '../../sandbox/merkle.js';
import { checkpointText, generateLogKey, signNote } from '../../sandbox/tlog.js';
import { canonicalEvent, canonicalJson, describeProblem } from '../../src/audit/chain.js';
import { parseCheckpointText, parseNote, parseProof, parseVerifierKey, verifyCheckpoint, } from '../../src/audit/checkpoint.js';
import { Frontier, leafHash, leftSiblings, verifyConsistency, verifyInclusion, } from '../../src/audit/merkle.js';
import { prettyLine } from '../../src/audit/render.js';
import { describeLogProblem, StreamTree } from '../../src/audit/transparency.js';
import { sanitize, terminalSafeJson } from '../../src/errors.js';
// ---- the oracle: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1, literally ----
const H = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
const k = (n) => 2 ** Math.ceil(Math.log2(n) - 1);
function mth(d) {
    if (d.length === 0)
        return H();
    if (d.length === 1)
        return H(Buffer.from([0]), d[0]);
    const s = k(d.length);
    return H(Buffer.from([1]), mth(d.slice(0, s)), mth(d.slice(s)));
}
function path(m, d) {
    if (d.length === 1)
        return [];
    const s = k(d.length);
    return m < s
        ? [...path(m, d.slice(0, s)), mth(d.slice(s))]
        : [...path(m - s, d.slice(s)), mth(d.slice(0, s))];
}
function subproof(m, d, b) {
    if (m === d.length)
        return b ? [] : [mth(d)];
    const s = k(d.length);
    return m <= s
        ? [...subproof(m, d.slice(0, s), b), mth(d.slice(s))]
        : [...subproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}
const CT_LEAVES = [
    '',
    '00',
    '10',
    '2021',
    '3031',
    '40414243',
    '5051525354555657',
    '606162636465666768696a6b6c6d6e6f',
];
const CT_ROOTS = [
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
    '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
    'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
test('CT test vectors: the client frontier, the sandbox tree and the oracle give the published root of every prefix', () => {
    const data = CT_LEAVES.map((h) => Buffer.from(h, 'hex'));
    const f = new Frontier();
    const t = new MerkleTree();
    assert.equal(f.root().toString('hex'), CT_ROOTS[0]);
    data.forEach((d, i) => {
        f.append(leafHash(d));
        t.append(serverLeaf(d));
        assert.equal(f.root().toString('hex'), CT_ROOTS[i + 1], `frontier at ${i + 1}`);
        assert.equal(t.root().toString('hex'), CT_ROOTS[i + 1], `tree at ${i + 1}`);
        assert.equal(mth(data.slice(0, i + 1)).toString('hex'), CT_ROOTS[i + 1], `oracle at ${i + 1}`);
    });
});
test('a string leaf is hashed as 0x00 || its UTF-8 (the audit event leaf)', () => {
    const s = '{"actor":"ü","seq":1}';
    assert.deepEqual(leafHash(s), H(Buffer.from([0]), Buffer.from(s, 'utf8')));
});
const leaves = (n) => Array.from({ length: n }, (_, i) => Buffer.from(`leaf ${i}`));
function treeOf(d) {
    const t = new MerkleTree();
    for (const x of d)
        t.append(serverLeaf(x));
    return t;
}
test('inclusion proofs: the sandbox equals the oracle, the client accepts them and rejects every mutation (fuzzed sizes)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), (n, a, flip) => {
        const d = leaves(n);
        const t = treeOf(d);
        const m = a % n;
        const p = t.inclusion(m, n);
        assert.deepEqual(p, path(m, d));
        const root = mth(d);
        const leaf = H(Buffer.from([0]), d[m]);
        assert.ok(verifyInclusion(m, n, leaf, p, root));
        if (p.length > 0) {
            const bad = p.map((x) => Buffer.from(x));
            bad[flip % bad.length][flip % 32] ^= 1;
            assert.ok(!verifyInclusion(m, n, leaf, bad, root), 'a flipped bit');
            assert.ok(!verifyInclusion(m, n, leaf, p.slice(0, -1), root), 'truncated');
        }
        assert.ok(!verifyInclusion(m, n, leaf, [...p, root], root), 'one hash too many');
        assert.ok(!verifyInclusion(m, n, H(Buffer.from([0]), Buffer.from('other')), p, root), 'another leaf');
        assert.ok(!verifyInclusion(m, n + 1, leaf, p, mth([...d, Buffer.from('x')])), 'another tree');
    }), { numRuns: 300 });
});
test('consistency proofs: the sandbox equals the oracle, the client accepts them and rejects every mutation (fuzzed sizes)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), (n, a, flip) => {
        const d = leaves(n);
        const t = treeOf(d);
        const m = 1 + (a % n);
        const p = t.consistency(m, n);
        assert.deepEqual(p, m === n ? [] : subproof(m, d, true));
        const r1 = mth(d.slice(0, m));
        const r2 = mth(d);
        assert.ok(verifyConsistency(m, n, r1, r2, p));
        if (p.length > 0) {
            const bad = p.map((x) => Buffer.from(x));
            bad[flip % bad.length][flip % 32] ^= 1;
            assert.ok(!verifyConsistency(m, n, r1, r2, bad), 'a flipped bit');
            assert.ok(!verifyConsistency(m, n, r1, r2, p.slice(0, -1)), 'truncated');
            assert.ok(!verifyConsistency(m, n, r1, r2, [...p, r2]), 'one hash too many');
            // A different first tree (one leaf changed) is not consistent with the second.
            const other = [...d.slice(0, m - 1), Buffer.from('changed')];
            assert.ok(!verifyConsistency(m, n, mth(other), r2, p), 'a rewritten prefix');
        }
    }), { numRuns: 300 });
});
test('mid-log start: the left siblings of an inclusion proof are the compact range before the leaf (fuzzed)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), (n, a) => {
        const d = leaves(n);
        const m = a % n;
        const f = Frontier.from(m, leftSiblings(m, n, path(m, d)));
        assert.deepEqual(f.root(), mth(d.slice(0, m)));
        for (const x of d.slice(m))
            f.append(H(Buffer.from([0]), x));
        assert.deepEqual(f.root(), mth(d));
    }), { numRuns: 300 });
});
test('the frontier gives the oracle root at every size, and its block callback the oracle subtree roots', () => {
    const d = leaves(70);
    const f = new Frontier();
    const blocks = [];
    f.onNode = (h, i, hash) => {
        if (h === 3)
            blocks[i] = hash;
    };
    d.forEach((x, i) => {
        f.append(H(Buffer.from([0]), x));
        assert.deepEqual(f.root(), mth(d.slice(0, i + 1)));
    });
    assert.equal(blocks.length, 8);
    for (const [i, b] of blocks.entries())
        assert.deepEqual(b, mth(d.slice(i * 8, i * 8 + 8)));
});
test('a signed checkpoint from the sandbox verifies against its vkey; changed text, another key, another origin do not', () => {
    const key = generateLogKey('example.test/audit');
    const vk = parseVerifierKey(key.vkey);
    assert.ok(typeof vk !== 'string', String(vk));
    const root = mth(leaves(5));
    const note = signNote(checkpointText('example.test/audit/acme', 5, root), key);
    const cp = verifyCheckpoint(note, vk, 'example.test/audit/acme');
    assert.ok(!('kind' in cp), JSON.stringify(cp));
    assert.equal(cp.size, 5);
    assert.deepEqual(cp.root, root);
    assert.deepEqual(verifyCheckpoint(note.replace('\n5\n', '\n6\n'), vk, 'example.test/audit/acme'), {
        kind: 'bad-signature',
    });
    const other = signNote(checkpointText('example.test/audit/acme', 5, root), generateLogKey('example.test/audit'));
    assert.equal(verifyCheckpoint(other, vk, 'example.test/audit/acme').kind, 'unknown-key');
    assert.equal(verifyCheckpoint(note, vk, 'example.test/audit/globex').kind, 'origin');
    // A cosignature by an unknown key is ignored (c2sp.org/signed-note), ours still verifies.
    const witness = signNote(checkpointText('example.test/audit/acme', 5, root), generateLogKey('witness.test'));
    const cosigned = `${note}${witness.slice(witness.lastIndexOf('— '))}`;
    assert.ok(!('kind' in verifyCheckpoint(cosigned, vk, 'example.test/audit/acme')));
});
test('the key ID is SHA-256(name || 0x0A || 0x01 || key)[:4] (c2sp.org/signed-note), checked independently', () => {
    const key = generateLogKey('example.test/audit');
    const [name, id, b64] = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/.exec(key.vkey).slice(1);
    assert.equal(name, 'example.test/audit');
    const raw = Buffer.from(b64, 'base64');
    assert.equal(raw[0], 1);
    const want = createHash('sha256')
        .update(Buffer.concat([Buffer.from('example.test/audit\n'), Buffer.from([1]), raw.subarray(1)]))
        .digest()
        .subarray(0, 4)
        .toString('hex');
    assert.equal(id, want);
    assert.equal(typeof parseVerifierKey(key.vkey.replace(id, '00000000')), 'string', 'a wrong key ID is refused');
});
test('fuzz: the note, checkpoint, vkey and proof parsers never throw and accept nothing malformed', () => {
    const key = generateLogKey('example.test/audit');
    const vk = parseVerifierKey(key.vkey);
    assert.ok(typeof vk !== 'string');
    const good = signNote(checkpointText('example.test/audit/acme', 3, mth(leaves(3))), key);
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), 
    // Mutations of a valid note: a character replaced, inserted or removed somewhere.
    fc
        .tuple(fc.nat(), fc.string({ unit: 'binary', maxLength: 3 }), fc.nat({ max: 3 }))
        .map(([at, s, del]) => {
        const i = at % good.length;
        return good.slice(0, i) + s + good.slice(i + del);
    })), (text) => {
        parseNote(text);
        parseCheckpointText(text);
        parseVerifierKey(text);
        const p1 = parseProof(text, 'consistency_path');
        assert.ok(typeof p1 === 'string' || p1.every((h) => h.length === 32));
        const r = verifyCheckpoint(text, vk, 'example.test/audit/acme');
        if (!('kind' in r)) {
            // Accepted: then the signed text is exactly the original checkpoint's.
            assert.equal(r.size, 3);
            assert.deepEqual(r.root, mth(leaves(3)));
        }
    }), { numRuns: 2000 });
    for (const bad of [
        '',
        '{"consistency_path":"x"}',
        '{"consistency_path":["AAAA"]}',
        '[',
        'null',
        '{"consistency_path":[1]}',
    ]) {
        assert.equal(typeof parseProof(bad, 'consistency_path'), 'string', bad);
    }
    assert.equal(parseProof(JSON.stringify({ consistency_path: Array(65).fill(mth([]).toString('base64')) }), 'consistency_path'), 'the proof has more than 64 hashes');
});
const eventArb = fc.record({
    seq: fc.integer({ min: 1, max: 2 ** 40 }),
    ts: fc.string(),
    tenant: fc.string(),
    actor: fc.string(),
    tool: fc.string(),
    downstream: fc.string(),
    outcome: fc.constantFrom('allowed', 'denied', 'error'),
    reason: fc.string(),
    cross_tenant: fc.boolean(),
    prev: fc.stringMatching(/^[0-9a-f]{64}$/),
    hash: fc.stringMatching(/^[0-9a-f]{64}$/),
}, { requiredKeys: ['seq', 'ts', 'tenant', 'actor', 'tool', 'downstream', 'outcome', 'prev', 'hash'] });
test('fuzz: the fast canonical event equals canonicalJson (the chain body and the Merkle leaf)', () => {
    fc.assert(fc.property(eventArb, (e) => {
        const { prev: _p, hash: _h, ...rest } = e;
        const c = canonicalEvent(e);
        assert.equal(c.rest, canonicalJson(rest));
        assert.equal(c.full, canonicalJson(e));
    }), { numRuns: 1000 });
});
// biome-ignore lint/suspicious/noControlCharactersInRegex: what must never reach the terminal
const TERMINAL_UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const hostile = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('\u001b[2J\u001b[H', '\u001b]52;c;Y3VybCBldmlsIHwgc2g=\u0007', '\u001b]0;pwned\u0007', '\u009b31m', '\u202eevil'));
test('fuzz: every field of an event, every SSE id and every problem line reach the terminal without ESC, C1 or bidi controls', () => {
    const c = new Chalk({ level: 0 });
    fc.assert(fc.property(eventArb, hostile, hostile, (e, id, tenant) => {
        const ev = { ...e, ts: `${e.ts}${id}`, actor: `${e.actor}${tenant}` };
        assert.doesNotMatch(prettyLine(ev, c), TERMINAL_UNSAFE);
        assert.doesNotMatch(terminalSafeJson(JSON.stringify(ev)).replace(/\n$/, ''), TERMINAL_UNSAFE);
        for (const line of [
            describeProblem({ kind: 'malformed', id, why: tenant }),
            describeProblem({ kind: 'tenant', seq: 1, tenant }),
            describeLogProblem({ kind: 'checkpoint', failure: { kind: 'origin', origin: tenant } }),
            describeLogProblem({ kind: 'checkpoint', failure: { kind: 'unknown-key', names: [tenant, id] } }),
            describeLogProblem({ kind: 'proof', why: id }),
        ]) {
            // The CLI writes every problem line through sanitize (src/cli/audit.ts `alarm`).
            assert.doesNotMatch(sanitize(line, 400), TERMINAL_UNSAFE);
        }
    }), { numRuns: 1000 });
});
test('StreamTree mid-log: seeded at once from event 1, or later from a proof; every event counted once; the root compared at the checkpoint', () => {
    const d = leaves(20);
    const root = mth(d);
    const cp = { origin: 'o', size: 20, root, note: '' };
    for (const first of [1, 7]) {
        const problems = [];
        const t = new StreamTree({
            remembered: undefined,
            size: 20,
            now: () => 0,
            report: (p) => problems.push(p),
        });
        t.expect(cp);
        let asked = 0;
        t.startMidLog((seq) => {
            asked += 1;
            assert.equal(seq, first);
            if (seq === 1)
                t.seed(new Frontier());
        });
        // The leaf data are the raw bytes here (the test's leaves), passed as latin1 strings of ASCII.
        for (let i = first; i <= 20; i++)
            t.add(i, d[i - 1].toString('latin1'));
        if (first > 1) {
            assert.equal(t.verified, undefined, 'not before the seed');
            t.seed(Frontier.from(first - 1, leftSiblings(first - 1, 20, path(first - 1, d))));
        }
        assert.equal(asked, 1);
        assert.deepEqual(problems, []);
        assert.equal(t.verified, cp, `verified from ${first}`);
    }
});
