// The audit log as a transparency log (docs/protocol.md §5, "Transparency log"): each tenant's events are
// also the leaves of an RFC 9162 Merkle tree (sandbox/merkle.ts), and the control plane publishes
//
//   GET /audit/log                      metadata: origin, verifier key (c2sp.org/signed-note vkey)
//   GET /audit/checkpoint               the tenant's latest checkpoint (c2sp.org/tlog-checkpoint), signed
//   GET /audit/proof/inclusion?index=I&tree_size=N        RFC 9162 §2.1.3 (or ?hash=<b64 leaf hash>)
//   GET /audit/proof/consistency?first=M&second=N         RFC 9162 §2.1.4
//
// all behind the tenant token, the tenant taken from the token. The checkpoint is a signed note whose text
// is `<origin>\n<size>\n<base64 root>\n` and whose one signature line is `— <key name> base64(key ID ||
// Ed25519(text))`, key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note).
// A real control plane gets the same from Trillian Tessera or Sigsum (see docs/protocol.md).
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { leafHash } from './merkle.js';
import { sendJson } from './resource.js';
export function generateLogKey(name) {
    if (!/^[^\s+]+$/u.test(name))
        throw new TypeError('a note key name has no spaces and no +');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    const id = keyId(name, raw);
    return {
        name,
        privateKey,
        publicKey: raw,
        vkey: `${name}+${id.toString('hex')}+${Buffer.concat([Buffer.from([1]), raw]).toString('base64')}`,
    };
}
/** c2sp.org/signed-note: SHA-256(key name || 0x0A || 0x01 || 32-byte key)[:4]. */
function keyId(name, publicKey) {
    return createHash('sha256')
        .update(Buffer.from(`${name}\n`, 'utf8'))
        .update(Buffer.from([1]))
        .update(publicKey)
        .digest()
        .subarray(0, 4);
}
/** A signed note: the text, a blank line, one signature line. */
export function signNote(text, key) {
    const sig = sign(null, Buffer.from(text, 'utf8'), key.privateKey);
    const line = Buffer.concat([keyId(key.name, key.publicKey), sig]).toString('base64');
    return `${text}\n— ${key.name} ${line}\n`;
}
export function checkpointText(origin, size, root) {
    return `${origin}\n${size}\n${root.toString('base64')}\n`;
}
const SEQ = /^\d{1,15}$/;
export function originOf(name, tenant) {
    return `${name}/${tenant}`;
}
/** Serves one authenticated GET under /audit/ other than the stream. Returns false for an unknown path. */
export function serveTlog(_req, res, url, tenant, o) {
    const tree = o.log.tree(tenant);
    const fault = o.fault();
    const origin = originOf(o.name, tenant);
    if (fault?.kind === 'absent')
        return false;
    switch (url.pathname) {
        case '/audit/log':
            sendJson(res, 200, {
                origin,
                verifier_key: o.key.vkey,
                checkpoint: '/audit/checkpoint',
                inclusion_proof: '/audit/proof/inclusion',
                consistency_proof: '/audit/proof/consistency',
                leaf: 'SHA-256(0x00 || canonical JSON of the event, every field)',
            });
            return true;
        case '/audit/checkpoint': {
            const size = fault?.kind === 'size' ? Math.min(fault.size, tree.size) : tree.size;
            const key = fault?.kind === 'other-key' ? otherKey(o.key.name) : o.key;
            let note = signNote(checkpointText(origin, size, tree.root(size)), key);
            if (fault?.kind === 'bad-signature') {
                const at = note.lastIndexOf(' ') + 8;
                note = `${note.slice(0, at)}${note[at] === 'A' ? 'B' : 'A'}${note.slice(at + 1)}`;
            }
            res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
            res.end(note);
            return true;
        }
        case '/audit/proof/inclusion':
        case '/audit/proof/consistency': {
            const q = (k) => {
                const v = url.searchParams.get(k);
                return v !== null && SEQ.test(v) ? Number(v) : undefined;
            };
            let body;
            let path;
            try {
                if (url.pathname === '/audit/proof/consistency') {
                    const first = q('first');
                    const second = q('second');
                    if (first === undefined || second === undefined)
                        throw new RangeError('first and second: tree sizes');
                    path = tree.consistency(first, second);
                    body = { tree_size_1: first, tree_size_2: second };
                }
                else {
                    const size = q('tree_size');
                    let index = q('index');
                    const hash = url.searchParams.get('hash');
                    if (index === undefined && hash !== null)
                        index = findLeaf(tenant, o.log, hash, size ?? 0);
                    if (size === undefined || index === undefined)
                        throw new RangeError('tree_size and index or hash');
                    path = tree.inclusion(index, size);
                    body = { leaf_index: index, tree_size: size };
                }
            }
            catch (err) {
                sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
                return true;
            }
            const field = url.pathname === '/audit/proof/consistency' ? 'consistency_path' : 'inclusion_path';
            let hashes = path.map((h) => h.toString('base64'));
            if (fault?.kind === 'proof' && fault.mode === 'truncate')
                hashes = hashes.slice(0, -1);
            if (fault?.kind === 'proof' && fault.mode === 'malformed')
                hashes = [...hashes.slice(1), 'AAAA'];
            if (fault?.kind === 'proof' && fault.mode === 'garbage') {
                res.writeHead(200, { 'content-type': 'application/json' });
                res.end('{"consistency_path": [');
                return true;
            }
            sendJson(res, 200, { ...body, [field]: hashes });
            return true;
        }
        default:
            return false;
    }
}
/** The index of the leaf with this hash among the first `size` (RFC 9162 get-proof-by-hash). */
function findLeaf(tenant, log, b64, size) {
    const want = Buffer.from(b64, 'base64');
    if (want.length !== 32)
        return undefined;
    const tree = log.tree(tenant);
    for (let i = 0; i < Math.min(size, tree.size); i++)
        if (tree.leaf(i).equals(want))
            return i;
    return undefined;
}
let other;
function otherKey(name) {
    if (other?.name !== name)
        other = generateLogKey(name);
    return other;
}
export { leafHash };
