// The sandbox's SSH certificate authority: OpenSSH user (and host) certificates built in pure JS with an
// ed25519 CA key held in memory, in the format of OpenSSH's PROTOCOL.certkeys. Pure JS, not `ssh-keygen -s`:
// the format is a dozen length-prefixed fields, and signing in-process keeps the CA key out of any file.
//
// The CA's public key goes into sshd's TrustedUserCAKeys (sandbox/sshd.ts); a host certificate's CA into a
// known_hosts `@cert-authority` line.
import { createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
/** SSH wire `string`: uint32 length, bytes. */
function str(b) {
    const body = typeof b === 'string' ? Buffer.from(b) : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body]);
}
function u32(n) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
}
function u64(n) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    return b;
}
/** The SSH public key blob of an ed25519 key: string "ssh-ed25519", string raw-32-bytes. */
export function ed25519Blob(key) {
    const jwk = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'jwk' });
    return Buffer.concat([str('ssh-ed25519'), str(Buffer.from(String(jwk.x), 'base64url'))]);
}
/** Reads the fields of an SSH wire blob as strings (for the public key's type and raw key). */
function readStrings(blob, count) {
    const out = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
        if (at + 4 > blob.length)
            throw new Error('truncated SSH key blob');
        const len = blob.readUInt32BE(at);
        if (at + 4 + len > blob.length)
            throw new Error('truncated SSH key blob');
        out.push(blob.subarray(at + 4, at + 4 + len));
        at += 4 + len;
    }
    return out;
}
export function createSshCa(comment = 'mcp-secure-sandbox-ca') {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const caBlob = ed25519Blob(publicKey);
    return {
        publicKeyLine: `ssh-ed25519 ${caBlob.toString('base64')} ${comment}`,
        issue(req) {
            const [type, b64] = req.publicKey.trim().split(/\s+/);
            if (type !== 'ssh-ed25519' || !b64)
                throw new Error('only ssh-ed25519 public keys are certified');
            const [kind, raw] = readStrings(Buffer.from(b64, 'base64'), 2);
            if (kind?.toString() !== 'ssh-ed25519' || raw?.length !== 32)
                throw new Error('not an ed25519 key');
            // PROTOCOL.certkeys: options and extensions sorted by name, each (string name, string data); an
            // option's data is itself a string (so a value is wrapped twice), a flag extension's data is empty.
            const options = Object.entries(req.criticalOptions ?? {})
                .sort(([a], [b]) => (a < b ? -1 : 1))
                .map(([name, value]) => Buffer.concat([str(name), str(str(value))]));
            const extensions = [...(req.extensions ?? [])]
                .sort()
                .map((name) => Buffer.concat([str(name), str('')]));
            const body = Buffer.concat([
                str('ssh-ed25519-cert-v01@openssh.com'),
                str(randomBytes(32)),
                str(raw),
                u64(BigInt(`0x${randomBytes(8).toString('hex')}`)),
                u32(req.type === 'user' ? 1 : 2),
                str(req.keyId),
                str(Buffer.concat(req.principals.map((p) => str(p)))),
                u64(BigInt(Math.max(0, Math.floor(req.validAfter)))),
                u64(BigInt(Math.max(0, Math.floor(req.validBefore)))),
                str(Buffer.concat(options)),
                str(Buffer.concat(extensions)),
                str(''),
                str(caBlob),
            ]);
            const signature = Buffer.concat([str('ssh-ed25519'), str(sign(null, body, privateKey))]);
            const cert = Buffer.concat([body, str(signature)]);
            return `ssh-ed25519-cert-v01@openssh.com ${cert.toString('base64')} ${req.keyId.replace(/\s/g, '_')}`;
        },
    };
}
