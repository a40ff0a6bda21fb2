/**
 * No SSH key on disk: an ed25519 key generated in memory for one session, a short-lived OpenSSH user
 * certificate for it from the control plane's SSH CA, and an ssh-agent served by this process on a 0600
 * Unix socket in the session's private 0700 directory, holding only that identity. OpenSSH is pointed at
 * it with IdentityAgent (and IdentitiesOnly, so nothing else is offered); the private key never leaves
 * this process's memory.
 *
 * The agent speaks the ssh-agent protocol (draft-ietf-sshm-ssh-agent §4-6): REQUEST_IDENTITIES (11) →
 * IDENTITIES_ANSWER (12); SIGN_REQUEST (13) → SIGN_RESPONSE (14); anything else → FAILURE (5), so nothing
 * can be added, removed, locked or forwarded. Signatures for the certificate identity are made with the
 * certificate's key (an ed25519 signature: string "ssh-ed25519", string sig; RFC 8709 §6).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { CliError, sanitize } from '../errors.js';
const SSH_AGENT_FAILURE = 5;
const SSH_AGENTC_REQUEST_IDENTITIES = 11;
const SSH_AGENT_IDENTITIES_ANSWER = 12;
const SSH_AGENTC_SIGN_REQUEST = 13;
const SSH_AGENT_SIGN_RESPONSE = 14;
/** A sign request carries a session id and a userauth request: a few hundred bytes; 256 KiB bounds it. */
const MAX_MESSAGE = 256 * 1024;
function str(b) {
    const body = typeof b === 'string' ? Buffer.from(b) : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body]);
}
function frame(type, body = Buffer.alloc(0)) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length + 1);
    return Buffer.concat([len, Buffer.from([type]), body]);
}
/** Reads an SSH `string` at `at`; undefined when it does not fit. */
function readString(buf, at) {
    if (at + 4 > buf.length)
        return undefined;
    const len = buf.readUInt32BE(at);
    if (at + 4 + len > buf.length)
        return undefined;
    return { value: buf.subarray(at + 4, at + 4 + len), next: at + 4 + len };
}
/** Parses an OpenSSH ed25519 user certificate line, checking it certifies `keyBlob`'s key. */
export function parseCertificate(line, keyBlob) {
    const [type, b64] = line.trim().split(/\s+/);
    const bad = (why) => new CliError('error', `the SSH CA answered with an unusable certificate (${why})`, {
        hint: "tell the control plane's operators; meanwhile set ssh_ca_endpoint off to use your own key",
    });
    if (type !== 'ssh-ed25519-cert-v01@openssh.com' || !b64)
        throw bad('not an ssh-ed25519 certificate');
    const blob = Buffer.from(b64, 'base64');
    const fields = [];
    let at = 0;
    for (let i = 0; i < 3; i++) {
        const s = readString(blob, at);
        if (!s)
            throw bad('truncated');
        fields.push(s.value);
        at = s.next;
    }
    const raw = readString(keyBlob, readString(keyBlob, 0)?.next ?? 0)?.value;
    if (fields[0]?.toString() !== type || !raw || !fields[2]?.equals(raw))
        throw bad('it is not for our key');
    at += 8 + 4; // serial, type
    const keyId = readString(blob, at);
    if (!keyId)
        throw bad('truncated');
    const principalsField = readString(blob, keyId.next);
    if (!principalsField || principalsField.next + 16 > blob.length)
        throw bad('truncated');
    const principals = [];
    for (let p = 0; p < principalsField.value.length;) {
        const s = readString(principalsField.value, p);
        if (!s)
            throw bad('bad principals');
        principals.push(s.value.toString('utf8'));
        p = s.next;
    }
    const validAfter = blob.readBigUInt64BE(principalsField.next);
    const validBefore = blob.readBigUInt64BE(principalsField.next + 8);
    return {
        blob,
        line: `${type} ${b64}`,
        validAfterMs: Number(validAfter) * 1000,
        validBeforeMs: Number(validBefore > 253402300799n ? 253402300799n : validBefore) * 1000,
        principals,
    };
}
/** The session's in-memory key and its current certificate. */
export class SessionIdentity {
    #key;
    publicBlob;
    #o;
    #cert;
    constructor(o) {
        this.#o = o;
        const { privateKey, publicKey } = generateKeyPairSync('ed25519');
        this.#key = privateKey;
        const x = Buffer.from(String(publicKey.export({ format: 'jwk' }).x), 'base64url');
        this.publicBlob = Buffer.concat([str('ssh-ed25519'), str(x)]);
    }
    get publicKeyLine() {
        return `ssh-ed25519 ${this.publicBlob.toString('base64')} mcp-secure-session`;
    }
    get certificate() {
        return this.#cert;
    }
    /** A certificate valid for at least `marginMs` more: the current one, or a new one from the CA. */
    async fresh(marginMs = 60_000) {
        const now = this.#o.now();
        if (this.#cert && this.#cert.validBeforeMs - now > marginMs && this.#cert.validAfterMs <= now + 1000)
            return this.#cert;
        const line = await this.#o.certify(this.publicKeyLine);
        this.#cert = parseCertificate(line, this.publicBlob);
        return this.#cert;
    }
    /** The identities the agent lists: the certificate (when there is one), then the plain key. */
    identities() {
        return [
            ...(this.#cert ? [{ blob: this.#cert.blob, comment: 'mcp-secure-session-cert' }] : []),
            { blob: this.publicBlob, comment: 'mcp-secure-session' },
        ];
    }
    /** An ed25519 signature over `data`, for the plain key or its certificate; undefined for any other key. */
    sign(keyBlob, data) {
        if (!keyBlob.equals(this.publicBlob) && !(this.#cert && keyBlob.equals(this.#cert.blob)))
            return undefined;
        return Buffer.concat([str('ssh-ed25519'), str(sign(null, data, this.#key))]);
    }
}
/** Serves `identity` as an ssh-agent on `socket` (0600; the directory around it is 0700). */
export async function serveAgent(identity, socket) {
    await rm(socket, { force: true });
    const conns = new Set();
    const server = createServer((conn) => {
        conns.add(conn);
        conn.once('close', () => conns.delete(conn));
        let buf = Buffer.alloc(0);
        conn.on('error', () => conn.destroy());
        conn.on('data', (chunk) => {
            buf = Buffer.concat([buf, chunk]);
            for (let i = 0; i < 64 && buf.length >= 4; i++) {
                const len = buf.readUInt32BE(0);
                if (len < 1 || len > MAX_MESSAGE) {
                    conn.destroy();
                    return;
                }
                if (buf.length < 4 + len)
                    return;
                const msg = buf.subarray(4, 4 + len);
                buf = buf.subarray(4 + len);
                conn.write(answer(identity, msg));
            }
        });
    });
    await new Promise((resolve, reject) => {
        server.once('error', (err) => reject(new CliError('error', `cannot serve the session's ssh-agent (${sanitize(err.code ?? err.message, 40)})`)));
        server.listen(socket, () => resolve());
    });
    await chmod(socket, 0o600);
    return {
        socket,
        close: () => new Promise((resolve) => {
            for (const c of conns)
                c.destroy();
            server.close(() => resolve());
        }),
    };
}
function answer(identity, msg) {
    const type = msg[0];
    if (type === SSH_AGENTC_REQUEST_IDENTITIES) {
        const ids = identity.identities();
        const count = Buffer.alloc(4);
        count.writeUInt32BE(ids.length);
        return frame(SSH_AGENT_IDENTITIES_ANSWER, Buffer.concat([count, ...ids.flatMap((i) => [str(i.blob), str(i.comment)])]));
    }
    if (type === SSH_AGENTC_SIGN_REQUEST) {
        const key = readString(msg, 1);
        const data = key ? readString(msg, key.next) : undefined;
        const signature = key && data ? identity.sign(key.value, data.value) : undefined;
        return signature ? frame(SSH_AGENT_SIGN_RESPONSE, str(signature)) : frame(SSH_AGENT_FAILURE);
    }
    return frame(SSH_AGENT_FAILURE);
}
