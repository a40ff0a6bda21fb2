/**
 * Host-key verification the way OpenSSH does it: `known_hosts` lines with plain, bracketed `[host]:port`,
 * wildcard, negated and hashed (`|1|salt|hmac`) patterns, `@revoked` markers; plus fingerprints pinned in
 * the profile. A changed key is refused; an unknown key needs the user's yes (TOFU), then is recorded.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { globMatch } from './glob.js';
/** OpenSSH's fingerprint: SHA256:base64(sha256(key blob)) without padding. */
export function fingerprint(key) {
    return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}
/** The key type named inside an SSH public key blob (its first string). */
export function keyType(key) {
    if (key.length < 4)
        return 'unknown';
    const len = key.readUInt32BE(0);
    return len > 0 && len < 64 && key.length >= 4 + len
        ? key.subarray(4, 4 + len).toString('ascii')
        : 'unknown';
}
/** How OpenSSH names a host in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function hostToken(host, port) {
    return port === 22 ? host : `[${host}]:${port}`;
}
function hashedMatches(entry, token) {
    // |1|base64(salt)|base64(HMAC-SHA1(salt, host))
    const [, magic, salt, hash] = entry.split('|');
    if (magic !== '1' || !salt || !hash)
        return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(token).digest('base64');
    return mac === hash;
}
/** Does a comma-separated known_hosts host field name this host? Negations veto. */
export function hostFieldMatches(field, host, port) {
    // OpenSSH lower-cases the host name before it looks it up or hashes it (sshconnect.c get_hostfile_hostname
    // via ssh.c lowercase(host)): a mixed-case HostName still finds its hashed entry.
    const token = hostToken(host.toLowerCase(), port);
    let matched = false;
    for (const raw of field.split(',')) {
        const negated = raw.startsWith('!');
        const pattern = negated ? raw.slice(1) : raw;
        const hit = pattern.startsWith('|') ? hashedMatches(pattern, token) : globMatch(pattern, token);
        if (hit && negated)
            return false;
        if (hit)
            matched = true;
    }
    return matched;
}
async function readEntries(files) {
    const entries = [];
    for (const file of files) {
        let text;
        try {
            text = await readFile(file, 'utf8');
        }
        catch {
            continue;
        }
        text.split('\n').forEach((rawLine, index) => {
            const line = rawLine.trim();
            if (!line || line.startsWith('#'))
                return;
            const fields = line.split(/\s+/);
            const marker = fields[0]?.startsWith('@') ? fields.shift() : undefined;
            const [hosts, type, key] = fields;
            if (hosts && type && key)
                entries.push({ marker, hosts, type, key, file, line: index + 1 });
        });
    }
    return entries;
}
/** Whether known_hosts lists any key (not revoked) for this host: doctor's check of the later hops. */
export async function isListed(files, host, port) {
    return (await readEntries(files)).some((e) => e.marker !== '@revoked' && hostFieldMatches(e.hosts, host, port));
}
/** The fingerprints pinned for this hop: entries `HOST=SHA256:…` whose HOST is the hop's known_hosts token. */
export function pinsFor(pins, host, port) {
    const token = hostToken(host, port);
    return pins.flatMap((pin) => {
        const at = pin.lastIndexOf('=');
        return at > 0 && pin.slice(0, at) === token ? [pin.slice(at + 1)] : [];
    });
}
export async function verifyHostKey(o) {
    const fp = fingerprint(o.key);
    const blob = o.key.toString('base64');
    const entries = (await readEntries(o.knownHostsFiles)).filter((e) => hostFieldMatches(e.hosts, o.host, o.port));
    // A revoked key is refused even when pinned.
    const revoked = entries.find((e) => e.marker === '@revoked' && e.key === blob);
    if (revoked)
        return { status: 'revoked', file: revoked.file, line: revoked.line };
    const plain = entries.filter((e) => e.marker === undefined);
    const match = plain.find((e) => e.key === blob);
    if (match)
        return { status: 'known', file: match.file, line: match.line };
    // OpenSSH treats a known host with a different key of the same type as changed; another type of key
    // for the same host is also suspicious enough to refuse (a downgrade would look just like it). A pin
    // never overrides this: a pin comes from a config file, known_hosts from the user's own past connections.
    const other = plain[0];
    if (other)
        return { status: 'changed', file: other.file, line: other.line, knownType: other.type };
    // A pin is for one hop only: a key pinned for one host proves nothing about another.
    if (pinsFor(o.pinned, o.host, o.port).includes(fp))
        return { status: 'pinned' };
    return { status: 'unknown' };
}
/**
 * The host-key algorithms to ask for, those of the key types known_hosts holds for this host first (what
 * OpenSSH does, sshconnect2.c order_hostkeyalgs): otherwise a server with several host keys answers with the
 * first one ssh2 prefers (ed25519) and a known ECDSA or RSA key looks "changed". ssh-rsa (SHA-1) is not
 * offered (OpenSSH 8.8 dropped it too).
 */
export async function hostKeyAlgorithms(files, host, port) {
    const all = [
        'ssh-ed25519',
        'ecdsa-sha2-nistp256',
        'ecdsa-sha2-nistp384',
        'ecdsa-sha2-nistp521',
        'rsa-sha2-512',
        'rsa-sha2-256',
    ];
    const known = (await readEntries(files))
        .filter((e) => e.marker === undefined && hostFieldMatches(e.hosts, host, port))
        .map((e) => e.type);
    const first = all.filter((alg) => known.some((t) => t === alg || (t === 'ssh-rsa' && alg.startsWith('rsa-sha2-'))));
    return [...first, ...all.filter((a) => !first.includes(a))];
}
/** Records an accepted key, hashed like OpenSSH's HashKnownHosts (Debian's default). */
export async function recordHostKey(file, host, port, key) {
    const salt = randomBytes(20);
    const mac = createHmac('sha1', salt).update(hostToken(host, port)).digest('base64');
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await appendFile(file, `|1|${salt.toString('base64')}|${mac} ${keyType(key)} ${key.toString('base64')}\n`, {
        mode: 0o600,
    });
}
