// Small SSH key helpers shared by the sandbox bastions (sandbox/bastion.ts, sandbox/sshd.ts): OpenSSH
// fingerprints, known_hosts lines, authorized_keys parsing, and picking a free loopback port.
import { createHash } from 'node:crypto';
import net from 'node:net';
import ssh2 from 'ssh2';
const { utils } = ssh2;
/** OpenSSH's form: `SHA256:` + base64(sha256(key blob)) without padding (ssh-keygen -l, sshkey_fingerprint). */
export function fingerprintOf(blob) {
    return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
/** A known_hosts line for host:port (sshd's `[host]:port` form unless the port is 22). */
export function knownHostsLineOf(host, port, blob) {
    const name = port === 22 ? host : `[${host}]:${port}`;
    return `${name} ${keyTypeOf(blob)} ${blob.toString('base64')}`;
}
/** The algorithm name at the start of a public key blob (RFC 4253 §6.6: string, then key data). */
export function keyTypeOf(blob) {
    if (blob.length < 4)
        throw new Error('not an SSH public key blob');
    const len = blob.readUInt32BE(0);
    if (len === 0 || len > 64 || 4 + len > blob.length)
        throw new Error('not an SSH public key blob');
    return blob.subarray(4, 4 + len).toString('latin1');
}
const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521))$/;
/**
 * One authorized_keys or .pub line: options before the key type (`restrict,permitopen=… ssh-ed25519 AAAA…`)
 * and the trailing comment are skipped. Throws on a line without a usable public key.
 */
export function parseAuthorizedKey(line) {
    const fields = line.trim().split(/\s+/);
    const at = fields.findIndex((f) => KEY_TYPE.test(f));
    const type = fields[at];
    const data = fields[at + 1];
    if (at < 0 || type === undefined || data === undefined) {
        throw new Error('not an authorized_keys line: no ssh-ed25519, ssh-rsa or ecdsa key in it');
    }
    const key = utils.parseKey(`${type} ${data}`);
    if (key instanceof Error)
        throw new Error(`not a usable public key: ${key.message}`);
    if (key.isPrivateKey())
        throw new Error('expected a public key');
    return key;
}
/** An OpenSSH (or PEM) private key text, parsed; throws on anything else. */
export function parsePrivateKey(text) {
    const parsed = utils.parseKey(text);
    if (parsed instanceof Error)
        throw new Error(`not a usable private key: ${parsed.message}`);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key?.isPrivateKey())
        throw new Error('expected a private key');
    return key;
}
/**
 * A fresh ed25519 key pair in OpenSSH formats ({ private, public }).
 *
 * ssh2's generateKeyPairSync('ed25519') strips leading zero bytes from the public key as if it were an
 * integer (ssh2 1.17 lib/keygen.js, "Remove leading zero bytes"), so one key in 256 comes out 31 bytes
 * long and neither ssh2 nor OpenSSH can parse it. Such a pair is drawn again.
 */
export function generateEd25519(comment) {
    for (;;) {
        const pair = utils.generateKeyPairSync('ed25519', comment !== undefined ? { comment } : {});
        const pub = utils.parseKey(pair.public);
        if (!(pub instanceof Error) && pub.getPublicSSH().length === 51)
            return pair; // 4+11 name, 4+32 key
    }
}
/** A port that was free on 127.0.0.1 a moment ago (bind 0, read it, close). */
export async function freeLoopbackPort() {
    const server = net.createServer();
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address();
    await new Promise((resolve) => server.close(() => resolve()));
    return port;
}
