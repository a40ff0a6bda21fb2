/**
 * Checkpoints of the audit log (docs/protocol.md §5, "Transparency log"): a c2sp.org/tlog-checkpoint body
 * (origin, tree size, base64 root hash) in a c2sp.org/signed-note signed with Ed25519. The verifier key is
 * the note vkey `name+hex key ID+base64(0x01 || public key)`, pinned per profile like an SSH host key.
 *
 * Parsers take server text and return either a value or a string saying what is wrong; they never throw
 * on input and bound everything they read (fuzzed in test/unit/tlog.test.ts).
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { HASH_SIZE } from './merkle.js';
export const MAX_NOTE = 64 * 1024;
const MAX_SIGNATURES = 64;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Strict standard base64 (RFC 4648 §4): what it decodes to re-encodes to the same text. */
export function strictBase64(text) {
    if (!B64.test(text))
        return undefined;
    const b = Buffer.from(text, 'base64');
    return b.toString('base64') === text ? b : undefined;
}
/** c2sp.org/signed-note: key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 key)[:4]. */
export function noteKeyId(name, publicKey) {
    return createHash('sha256')
        .update(Buffer.from(`${name}\n`, 'utf8'))
        .update(Buffer.from([1]))
        .update(publicKey)
        .digest()
        .subarray(0, 4);
}
// biome-ignore lint/suspicious/noControlCharactersInRegex: a key name must not hold them
const KEY_NAME = /^[^\s+\u0000-\u001f\u007f-\u009f]{1,256}$/u;
export function parseVerifierKey(text) {
    if (typeof text !== 'string' || text.length > 1024)
        return 'not a verifier key';
    // The name has no '+'; the base64 may (so split at the first two only).
    const a = text.indexOf('+');
    const b = a < 0 ? -1 : text.indexOf('+', a + 1);
    if (a < 0 || b < 0)
        return 'a verifier key is name+keyid+base64';
    const [name, hexId, b64] = [text.slice(0, a), text.slice(a + 1, b), text.slice(b + 1)];
    if (!KEY_NAME.test(name))
        return 'the key name has spaces, + or control characters';
    if (!/^[0-9a-f]{8}$/.test(hexId))
        return 'the key ID is not 8 hex digits';
    const raw = strictBase64(b64);
    if (raw?.length !== 33)
        return 'the key is not 33 bytes of base64';
    if (raw[0] !== 1)
        return 'not an Ed25519 key (signature type 0x01)';
    const publicKey = raw.subarray(1);
    const id = noteKeyId(name, publicKey);
    if (id.toString('hex') !== hexId)
        return 'the key ID does not match the key';
    let key;
    try {
        key = createPublicKey({
            key: { kty: 'OKP', crv: 'Ed25519', x: publicKey.toString('base64url') },
            format: 'jwk',
        });
    }
    catch {
        return 'not an Ed25519 public key';
    }
    return { name, id, publicKey: Buffer.from(publicKey), key, text };
}
/** Splits a signed note into its text and signature lines (c2sp.org/signed-note "Format"). */
export function parseNote(note) {
    if (typeof note !== 'string' || note.length === 0)
        return 'empty';
    if (note.length > MAX_NOTE)
        return 'longer than 64 KiB';
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the spec forbids them
    if (/[\u0000-\u0009\u000b-\u001f]/.test(note))
        return 'it holds control characters';
    if (note.includes('\uFFFD'))
        return 'it is not valid UTF-8';
    if (!note.endsWith('\n'))
        return 'it does not end with a newline';
    const sep = note.lastIndexOf('\n\n');
    if (sep < 0)
        return 'no blank line before the signatures';
    const text = note.slice(0, sep + 1);
    const lines = note.slice(sep + 2, -1).split('\n');
    if (lines.length > MAX_SIGNATURES)
        return 'too many signatures';
    const signatures = [];
    for (const line of lines) {
        const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
        if (!m)
            return 'a signature line is not "— name base64"';
        const raw = strictBase64(m[2]);
        if (!raw || raw.length < 5)
            return 'a signature is not base64 of a key ID and a signature';
        signatures.push({ name: m[1], id: raw.subarray(0, 4), sig: raw.subarray(4) });
    }
    if (signatures.length === 0)
        return 'no signature';
    return { text, signatures };
}
/** The checkpoint body (c2sp.org/tlog-checkpoint "Note text"). */
export function parseCheckpointText(text) {
    const lines = text.split('\n');
    lines.pop(); // the text ends with a newline
    if (lines.length < 3)
        return 'fewer than three lines';
    if (lines.some((l) => l === ''))
        return 'an empty line';
    const [origin, size, root] = lines;
    if (!/^(?:0|[1-9]\d{0,15})$/.test(size) || !Number.isSafeInteger(Number(size)))
        return 'the tree size is not a number';
    const hash = strictBase64(root);
    if (!hash || hash.length !== HASH_SIZE)
        return 'the root hash is not 32 bytes of base64';
    return { origin, size: Number(size), root: hash };
}
/**
 * Verifies a checkpoint against the pinned key: a signature by that key (name and ID) that verifies, and
 * the tenant's origin. Signatures by other keys are ignored, as the spec requires (witness cosignatures).
 */
export function verifyCheckpoint(note, key, origin) {
    const parsed = parseNote(note);
    if (typeof parsed === 'string')
        return { kind: 'malformed', why: parsed };
    const ours = parsed.signatures.filter((s) => s.name === key.name && s.id.equals(key.id));
    if (ours.length === 0)
        return { kind: 'unknown-key', names: parsed.signatures.map((s) => s.name) };
    const data = Buffer.from(parsed.text, 'utf8');
    for (const s of ours) {
        if (s.sig.length !== 64 || !verify(null, data, key.key, s.sig))
            return { kind: 'bad-signature' };
    }
    const body = parseCheckpointText(parsed.text);
    if (typeof body === 'string')
        return { kind: 'malformed', why: body };
    if (body.origin !== origin)
        return { kind: 'origin', origin: body.origin };
    return { ...body, note };
}
/** A proof answer: `{ <field>: [base64 hash…] }`, at most 64 hashes of 32 bytes. */
export function parseProof(body, field) {
    if (body.length > 16 * 1024)
        return 'the proof is longer than 16 KiB';
    let v;
    try {
        v = JSON.parse(body);
    }
    catch {
        return 'the proof is not JSON';
    }
    const path = v && typeof v === 'object' && !Array.isArray(v) ? v[field] : undefined;
    if (!Array.isArray(path))
        return `the proof has no ${field}`;
    if (path.length > 64)
        return 'the proof has more than 64 hashes';
    const out = [];
    for (const h of path) {
        const b = typeof h === 'string' ? strictBase64(h) : undefined;
        if (!b || b.length !== HASH_SIZE)
            return 'a proof hash is not 32 bytes of base64';
        out.push(b);
    }
    return out;
}
