/**
 * Which Unix user is on the other end of a loopback TCP connection, and who holds a local port, from the
 * kernel's socket tables (Linux /proc/net/tcp and /proc/net/tcp6; proc(5), "/proc/net/tcp"). 127.0.0.1 has
 * no access control of its own: any user on the machine can connect to a port another user listens on. The
 * peer's socket is in the same table as ours — its local address:port is our remote address:port — with the
 * uid that owns it, readable by every user. (sock_diag netlink would answer by the 4-tuple, but Node has no
 * netlink sockets.)
 *
 * Bottom layer: depends on nothing of the project but `sanitize`.
 */
import { open, readdir, readFile, readlink } from 'node:fs/promises';
import { endianness } from 'node:os';
import { sanitize } from './errors.js';
const TABLES = { v4: '/proc/net/tcp', v6: '/proc/net/tcp6' };
// The kernel prints each 32-bit word of an address as the CPU holds it (seq_printf "%08X" of __be32 words).
const LITTLE = endianness() === 'LE';
function hex32(bytes) {
    const ordered = LITTLE ? [...bytes].reverse() : bytes;
    return ordered
        .map((b) => b.toString(16).padStart(2, '0'))
        .join('')
        .toUpperCase();
}
function ipv4Bytes(address) {
    const parts = address.split('.');
    if (parts.length !== 4)
        return undefined;
    const bytes = parts.map(Number);
    return bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255) ? bytes : undefined;
}
function ipv6Bytes(address) {
    let text = address.split('%')[0].toLowerCase();
    let tail = [];
    const v4 = text.match(/:(\d+\.\d+\.\d+\.\d+)$/);
    if (v4) {
        const b = ipv4Bytes(v4[1]);
        if (!b)
            return undefined;
        tail = b;
        text = `${text.slice(0, -v4[1].length)}0:0`;
    }
    const halves = text.split('::');
    if (halves.length > 2)
        return undefined;
    const words = (s) => (s === '' ? [] : s.split(':'));
    const head = words(halves[0]);
    const rest = halves.length === 2 ? words(halves[1]) : [];
    const fill = 8 - head.length - rest.length;
    if (fill < 0 || (halves.length === 1 && fill !== 0))
        return undefined;
    const all = [...head, ...Array(fill).fill('0'), ...rest];
    const bytes = [];
    for (const w of all) {
        if (!/^[0-9a-f]{1,4}$/.test(w))
            return undefined;
        const n = Number.parseInt(w, 16);
        bytes.push(n >> 8, n & 0xff);
    }
    if (tail.length)
        bytes.splice(12, 4, ...tail);
    return bytes;
}
/** An address as /proc/net/tcp{,6} prints it, or undefined. */
export function procAddress(address, family) {
    if (family === 'v4') {
        const b = ipv4Bytes(address);
        return b ? hex32(b) : undefined;
    }
    const b = ipv6Bytes(address);
    if (!b)
        return undefined;
    return [0, 4, 8, 12].map((i) => hex32(b.slice(i, i + 4))).join('');
}
function procPort(port) {
    return port.toString(16).toUpperCase().padStart(4, '0');
}
/** "::ffff:127.0.0.1" → "127.0.0.1": a dual-stack listener names IPv4 peers that way. */
function unmapped(address) {
    const m = address.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i);
    return m ? m[1] : address;
}
/**
 * Where the peer's socket can be in the tables, as the text to find in its line: " LOCAL:PORT REM:PORT ".
 * An IPv4 peer is an AF_INET socket (tcp) or an AF_INET6 socket using a v4-mapped address (tcp6).
 */
function needles(ends) {
    const { remoteAddress, remotePort, localAddress, localPort } = ends;
    if (!remoteAddress || !localAddress || remotePort === undefined || localPort === undefined)
        return undefined;
    const peer = unmapped(remoteAddress);
    const us = unmapped(localAddress);
    const out = [];
    const add = (table, p, u) => {
        const a = procAddress(p, table);
        const b = procAddress(u, table);
        if (a && b)
            out.push({ table, text: ` ${a}:${procPort(remotePort)} ${b}:${procPort(localPort)} ` });
    };
    if (ipv4Bytes(peer) && ipv4Bytes(us)) {
        add('v4', peer, us);
        add('v6', `::ffff:${peer}`, `::ffff:${us}`);
    }
    else
        add('v6', peer, us);
    return out.length ? out : undefined;
}
/** The uid and inode fields of the table line that starts right after `at` (st tx:rx tr:tm retrnsmt uid timeout inode). */
function ownerAt(text, at) {
    const end = text.indexOf('\n', at);
    const f = text
        .slice(at, end < 0 ? undefined : end)
        .trim()
        .split(/\s+/, 7);
    const uid = Number(f[4]);
    const inode = f[6];
    // inode 0: a socket no process holds any more (TIME_WAIT, orphaned): nobody to attribute it to.
    if (!Number.isInteger(uid) || !inode || inode === '0')
        return undefined;
    return { uid, inode };
}
function find(text, needle) {
    // The peer's line has the needle right after "  sl:"; the needle cannot match our own end's line
    // (local and remote are the other way round there).
    for (let from = 0, i = 0; i < 4; i++) {
        const at = text.indexOf(needle, from);
        if (at < 0)
            return undefined;
        const owner = ownerAt(text, at + needle.length);
        if (owner)
            return owner;
        from = at + needle.length;
    }
    return undefined;
}
/** A file read 64 KiB at a time (procfs files have no size to read up front). */
async function* readChunks(path) {
    const file = await open(path, 'r');
    try {
        const buffer = Buffer.alloc(64 * 1024);
        for (let i = 0; i < 10_000; i++) {
            const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
            if (bytesRead === 0)
                return;
            yield buffer.toString('latin1', 0, bytesRead);
        }
    }
    finally {
        await file.close();
    }
}
/**
 * Finds the owner of the peer socket of accepted connections. The peer's socket is in the table before
 * `accept` returns (the handshake completed), so one read of the table begun after the accept answers for
 * every connection accepted until then: a burst of connections shares a few reads instead of one each.
 * A line not found is looked for once more in the next read (the kernel's seq_file walk can skip an entry
 * when others are removed while it reads); then the owner is unknown.
 */
export class PeerTable {
    waiting = [];
    reading = false;
    scheduled = false;
    chunks;
    /** Reads of the tables so far (for the benchmark and the tests). */
    reads = 0;
    constructor(options = {}) {
        const readText = options.readText;
        this.chunks = readText
            ? async function* (path) {
                yield await readText(path);
            }
            : readChunks;
    }
    /** Can this machine tell? Linux with a readable /proc/net/tcp. */
    async available() {
        if (process.platform !== 'linux' || typeof process.getuid !== 'function')
            return false;
        try {
            for await (const chunk of this.chunks(TABLES.v4))
                return chunk.length > 0;
        }
        catch {
            // unreadable
        }
        return false;
    }
    owner(ends) {
        // Copied now: a Socket's addresses are getters, and gone once it closes.
        const copy = {
            remoteAddress: ends.remoteAddress,
            remotePort: ends.remotePort,
            localAddress: ends.localAddress,
            localPort: ends.localPort,
        };
        const n = needles(copy);
        if (!n)
            return Promise.resolve({ known: false, reason: 'no-address' });
        return new Promise((resolve) => {
            this.waiting.push({ needles: n, resolve, tries: 0 });
            // After the poll phase: libuv accepts a burst in one go, so every connection of it joins one read.
            if (!this.scheduled) {
                this.scheduled = true;
                setImmediate(() => {
                    this.scheduled = false;
                    this.pump();
                });
            }
        });
    }
    pump() {
        if (this.reading || this.waiting.length === 0)
            return;
        this.reading = true;
        const batch = this.waiting;
        this.waiting = [];
        this.resolveBatch(batch)
            .catch(() => {
            for (const p of batch)
                p.resolve({ known: false, reason: 'not-found' });
        })
            .finally(() => {
            this.reading = false;
            this.pump();
        });
    }
    async resolveBatch(batch) {
        const owners = new Map();
        // IPv4 first: AF_INET peers are the common case, and tcp6 is then never read.
        for (const t of ['v4', 'v6']) {
            const wanted = new Map();
            for (const p of batch) {
                if (owners.has(p))
                    continue;
                for (const n of p.needles)
                    if (n.table === t)
                        wanted.set(n.text, [...(wanted.get(n.text) ?? []), p]);
            }
            if (wanted.size === 0)
                continue;
            this.reads += 1;
            for (const [needle, owner] of await this.scan(TABLES[t], new Set(wanted.keys()))) {
                for (const p of wanted.get(needle) ?? [])
                    owners.set(p, owner);
            }
        }
        for (const p of batch) {
            const owner = owners.get(p);
            if (owner)
                p.resolve({ known: true, ...owner });
            else if (p.tries === 0)
                this.waiting.push({ ...p, tries: 1 });
            else
                p.resolve({ known: false, reason: 'not-found' });
        }
    }
    /**
     * The owners of the lines holding these needles, reading the table a chunk at a time and stopping once
     * all are found: the kernel formats the table as it is read, so what is not read costs nothing (on a
     * busy machine it has thousands of lines, about 1 µs of kernel time each).
     */
    async scan(path, needles) {
        const found = new Map();
        let carry = '';
        try {
            for await (const chunk of this.chunks(path)) {
                // Complete lines only: the rest waits for the next chunk.
                const text = carry + chunk;
                const cut = text.lastIndexOf('\n') + 1;
                const lines = text.slice(0, cut);
                carry = text.slice(cut);
                for (const needle of needles) {
                    if (found.has(needle))
                        continue;
                    const owner = find(lines, needle);
                    if (owner)
                        found.set(needle, owner);
                }
                if (found.size === needles.size)
                    break;
            }
            if (carry) {
                for (const needle of needles) {
                    const owner = found.has(needle) ? undefined : find(`${carry}\n`, needle);
                    if (owner)
                        found.set(needle, owner);
                }
            }
        }
        catch {
            // An unreadable table names no owner: the connection is refused (fail closed).
        }
        return found;
    }
}
/** The user name of a uid from /etc/passwd, or undefined. */
export async function userName(uid, readText = (p) => readFile(p, 'utf8')) {
    const text = await readText('/etc/passwd').catch(() => '');
    for (const line of text.split('\n')) {
        const f = line.split(':');
        if (f[2] === String(uid) && f[0])
            return sanitize(f[0], 32);
    }
    return undefined;
}
/**
 * A process that holds one of these socket inodes, from /proc/PID/fd (only readable for our own processes,
 * or as root). Walked 32 processes at a time, each one's descriptors at once: a machine has thousands.
 */
export async function socketProcess(inodes) {
    const pids = (await readdir('/proc').catch(() => []))
        .filter((p) => /^\d+$/.test(p))
        .slice(0, 5000);
    const holds = async (pid) => {
        const fds = (await readdir(`/proc/${pid}/fd`).catch(() => [])).slice(0, 10_000);
        const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
        return links.some((link) => {
            const m = link.match(/^socket:\[(\d+)\]$/);
            return m !== null && inodes.has(m[1]);
        });
    };
    for (let i = 0; i < pids.length; i += 32) {
        const chunk = pids.slice(i, i + 32);
        const found = (await Promise.all(chunk.map(async (pid) => ((await holds(pid)) ? pid : undefined)))).find(Boolean);
        if (found) {
            const cmd = (await readFile(`/proc/${found}/cmdline`, 'utf8').catch(() => ''))
                .split('\0')
                .filter(Boolean)
                .join(' ');
            return { pid: Number(found), command: sanitize(cmd || 'unknown', 60) };
        }
    }
    return undefined;
}
export async function portHolder(port) {
    const hexPort = procPort(port);
    const inodes = new Set();
    let uid;
    for (const path of [TABLES.v4, TABLES.v6]) {
        const text = await readFile(path, 'latin1').catch(() => '');
        for (const line of text.split('\n').slice(1)) {
            const f = line.trim().split(/\s+/);
            // st 0A: TCP_LISTEN.
            if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A' && f[9]) {
                inodes.add(f[9]);
                uid ??= Number(f[7]);
            }
        }
    }
    if (uid === undefined || !Number.isInteger(uid))
        return undefined;
    const me = typeof process.getuid === 'function' ? process.getuid() : undefined;
    return { uid, user: await userName(uid), same: uid === me, process: await socketProcess(inodes) };
}
/** "pid 123 (node squat.js)" / "user nobody (uid 65534), pid 123 (…)", for messages. */
export function describeHolder(h) {
    const proc = h.process
        ? `pid ${h.process.pid} (${h.process.command})`
        : 'a process whose pid is hidden from you';
    return h.same ? proc : `another user, ${h.user ?? 'unknown'} (uid ${h.uid}), ${proc}`;
}
