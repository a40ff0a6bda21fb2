// The real OpenSSH sshd as a sandbox bastion, for tests and benches: everything in a temp dir (host key,
// authorized_keys, config, pid file), listening on 127.0.0.1 only, public-key auth for the current user
// only, and nothing but local TCP forwarding to the PermitOpen pairs: no shell (ForceCommand), no TTY, no
// agent, X11, streamlocal or remote forwarding.
//
// stop() drops every open connection: sshd's listener does not take its per-connection children with it
// on SIGTERM (they setsid(), sshd.c), so the whole process tree is collected from /proc first.
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { fingerprintOf, freeLoopbackPort, knownHostsLineOf, parseAuthorizedKey, parsePrivateKey, } from './ssh-keys.js';
import { which } from './which.js';
const run = promisify(execFile);
/**
 * sshd as found on PATH (Debian puts it in /usr/sbin, on root's PATH): absolute, because sshd re-executes
 * itself for each connection and refuses a relative path.
 */
export function sshdPath() {
    const found = which('sshd');
    if (found === undefined)
        throw new Error('sshd is not on PATH (Debian: apt-get install openssh-server)');
    return found;
}
/** sshd's privilege separation directory (Debian); it refuses to start as root without it. */
const PRIVSEP_DIR = '/run/sshd';
const START_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 3_000;
const STDERR_TAIL = 4_096;
/** Whether startSshd can work here: sshd and ssh-keygen present, and the privsep dir there or creatable. */
export async function haveSshd() {
    try {
        await access(sshdPath(), constants.X_OK);
        await run('ssh-keygen', ['-l', '-f', '/dev/null']).catch((err) => {
            if (err.code === 'ENOENT')
                throw err; // exit status 255 is fine
        });
        await ensurePrivsepDir();
        return true;
    }
    catch {
        return false;
    }
}
export async function startSshd(opts) {
    for (const line of opts.authorizedKeys)
        parseAuthorizedKey(line); // a clear error now, not a refused login later
    for (const { host, port } of opts.permitOpen) {
        if (!/^[A-Za-z0-9.:_-]+$/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
            throw new Error(`not a PermitOpen destination: ${host}:${port}`);
        }
    }
    const listenAddress = opts.listenAddress ?? '127.0.0.1';
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(listenAddress))
        throw new Error(`not an IPv4 address: ${listenAddress}`);
    const username = os.userInfo().username;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mcp-secure-sshd-'));
    try {
        const keyFile = path.join(dir, 'ssh_host_ed25519_key');
        let hostKey;
        if (opts.hostKey !== undefined) {
            parsePrivateKey(opts.hostKey);
            await writeFile(keyFile, opts.hostKey.endsWith('\n') ? opts.hostKey : `${opts.hostKey}\n`, {
                mode: 0o600,
            });
            const { stdout } = await run('ssh-keygen', ['-y', '-f', keyFile]);
            await writeFile(`${keyFile}.pub`, stdout);
            hostKey = opts.hostKey;
        }
        else {
            await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mcp-secure-sandbox', '-f', keyFile]);
            hostKey = await readFile(keyFile, 'utf8');
        }
        await chmod(keyFile, 0o600); // sshd refuses a host key others can read, whatever StrictModes says
        const extraKeyFiles = [];
        const extraPublic = [];
        for (const type of opts.extraHostKeyTypes ?? []) {
            const file = path.join(dir, `ssh_host_${type}_key`);
            await run('ssh-keygen', [
                '-q',
                '-t',
                type,
                ...(type === 'rsa' ? ['-b', '2048'] : []),
                '-N',
                '',
                '-C',
                'mcp-secure-sandbox',
                '-f',
                file,
            ]);
            await chmod(file, 0o600);
            const line = (await readFile(`${file}.pub`, 'utf8')).trim();
            const parsed = parseAuthorizedKey(line);
            extraKeyFiles.push(file);
            extraPublic.push({ type: parsed.type, blob: parsed.getPublicSSH(), line });
        }
        const hostPublicLine = (await readFile(`${keyFile}.pub`, 'utf8')).trim();
        const hostBlob = parseAuthorizedKey(hostPublicLine).getPublicSSH();
        const hostCertFile = opts.hostCertificate ? `${keyFile}-cert.pub` : undefined;
        if (hostCertFile && opts.hostCertificate)
            await writeFile(hostCertFile, `${opts.hostCertificate(hostPublicLine)}\n`);
        await ensurePrivsepDir();
        const authorizedKeysFile = path.join(dir, 'authorized_keys');
        await writeFile(authorizedKeysFile, opts.authorizedKeys.map((l) => `${l.trim()}\n`).join(''), {
            mode: 0o600,
        });
        const caFile = path.join(dir, 'trusted_user_ca_keys');
        const principalsFile = path.join(dir, 'authorized_principals');
        const withCa = (opts.trustedUserCaKeys?.length ?? 0) > 0;
        if (withCa) {
            await writeFile(caFile, opts.trustedUserCaKeys.map((l) => `${l.trim()}\n`).join(''), { mode: 0o600 });
            // restrict,port-forwarding (authorized_keys options, sshd(8)): whatever a certificate permits, this
            // account gives nothing but forwarding.
            await writeFile(principalsFile, (opts.authorizedPrincipals ?? []).map((p) => `restrict,port-forwarding ${p}\n`).join(''), {
                mode: 0o600,
            });
        }
        for (const line of opts.extraConfig ?? []) {
            if (/[\r\n]/.test(line))
                throw new Error('one sshd_config line per entry');
        }
        const configFile = path.join(dir, 'sshd_config');
        const pidFile = path.join(dir, 'sshd.pid');
        const version = await sshdVersion();
        let port = 0;
        let child;
        // If the process exits without close() (a crashed test), take the listener down with it.
        const orphaned = () => child?.kill('SIGKILL');
        const start = async () => {
            child = await launch(configFile, pidFile, port);
            process.once('exit', orphaned);
        };
        const stop = async () => {
            const running = child;
            child = undefined;
            process.off('exit', orphaned);
            if (running)
                await kill(running);
        };
        // The free port is only free until someone else takes it: a few tries.
        for (let attempt = 1;; attempt++) {
            port = opts.port ?? (await freeLoopbackPort());
            const text = config({
                listenAddress,
                port,
                keyFile,
                hostCertFile,
                extraKeyFiles,
                authorizedKeysFile,
                pidFile,
                username,
                permitOpen: opts.permitOpen,
                ca: withCa ? { caFile, principalsFile, keys: opts.authorizedKeys.length > 0 } : undefined,
                extra: opts.extraConfig ?? [],
                // OpenSSH 9.8 penalises addresses that fail to authenticate (PerSourcePenalties); the tests refuse
                // keys from 127.0.0.1 on purpose and would lock themselves out.
                noPenalties: version !== undefined && (version[0] > 9 || (version[0] === 9 && version[1] >= 8)),
            });
            await writeFile(configFile, text, { mode: 0o600 });
            try {
                await start();
                break;
            }
            catch (err) {
                if (attempt >= 3 ||
                    opts.port !== undefined ||
                    !(err instanceof Error) ||
                    !/Bind to port|Address already in use/i.test(err.message)) {
                    throw err;
                }
            }
        }
        return {
            host: listenAddress,
            port,
            username,
            fingerprint: fingerprintOf(hostBlob),
            knownHostsLine: knownHostsLineOf(listenAddress, port, hostBlob),
            hostKey,
            extraHostKeys: extraPublic.map((k) => ({
                type: k.type,
                fingerprint: fingerprintOf(k.blob),
                knownHostsLine: knownHostsLineOf(listenAddress, port, k.blob),
                publicKey: k.line,
            })),
            dir,
            stop,
            async restart() {
                await stop();
                await start();
            },
            async close() {
                await stop();
                await rm(dir, { recursive: true, force: true });
            },
        };
    }
    catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
    }
}
function config(c) {
    const permitOpen = c.permitOpen.length
        ? c.permitOpen.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(' ')
        : 'none';
    const lines = [
        ...c.extra,
        `ListenAddress ${c.listenAddress}:${c.port}`,
        'AddressFamily inet',
        `HostKey ${c.keyFile}`,
        ...(c.hostCertFile ? [`HostCertificate ${c.hostCertFile}`] : []),
        ...c.extraKeyFiles.map((f) => `HostKey ${f}`),
        `PidFile ${c.pidFile}`,
        `AuthorizedKeysFile ${c.ca && !c.ca.keys ? 'none' : c.authorizedKeysFile}`,
        ...(c.ca ? [`TrustedUserCAKeys ${c.ca.caFile}`, `AuthorizedPrincipalsFile ${c.ca.principalsFile}`] : []),
        'UsePAM no',
        'StrictModes no',
        'PubkeyAuthentication yes',
        'AuthenticationMethods publickey',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'HostbasedAuthentication no',
        'PermitEmptyPasswords no',
        'PermitRootLogin prohibit-password',
        `AllowUsers ${c.username}`,
        // local is "yes" minus remote (-R) forwarding: direct-tcpip is all the CLI needs.
        'AllowTcpForwarding local',
        `PermitOpen ${permitOpen}`,
        'PermitListen none',
        'GatewayPorts no',
        'AllowAgentForwarding no',
        'AllowStreamLocalForwarding no',
        'PermitTunnel no',
        'X11Forwarding no',
        'PermitTTY no',
        'PermitUserRC no',
        'PermitUserEnvironment no',
        'ForceCommand /bin/false',
        'PrintMotd no',
        'UseDNS no',
        'LogLevel ERROR',
        ...(c.noPenalties ? ['PerSourcePenalties no'] : []),
    ];
    return `${lines.join('\n')}\n`;
}
async function sshdVersion() {
    try {
        const { stdout, stderr } = await run(sshdPath(), ['-V']);
        const m = /OpenSSH_(\d+)\.(\d+)/.exec(`${stderr}${stdout}`);
        return m ? [Number(m[1]), Number(m[2])] : undefined;
    }
    catch (err) {
        const m = /OpenSSH_(\d+)\.(\d+)/.exec(String(err.stderr ?? ''));
        return m ? [Number(m[1]), Number(m[2])] : undefined;
    }
}
async function ensurePrivsepDir() {
    if (process.getuid?.() !== 0)
        return; // without root sshd runs unprivileged and skips privilege separation
    await mkdir(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
}
/**
 * Starts sshd in the foreground and resolves once it listens: sshd writes its PidFile only after its
 * listening sockets are bound (sshd.c main), so our pid there means the port is ours, which a probe
 * connection could not tell from someone else holding it.
 */
async function launch(configFile, pidFile, port) {
    await rm(pidFile, { force: true });
    // An absolute path: sshd re-executes itself for each connection and refuses otherwise.
    const child = spawn(sshdPath(), ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk) => {
        stderr = (stderr + chunk).slice(-STDERR_TAIL);
    });
    let exited;
    child.once('exit', (code, signal) => {
        exited = signal ? `signal ${signal}` : `status ${code}`;
    });
    child.once('error', (err) => {
        exited = err.message;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
        if (exited !== undefined)
            throw new Error(`sshd exited (${exited}): ${stderr.trim() || 'no output'}`);
        const written = await readFile(pidFile, 'utf8').catch(() => '');
        if (written.endsWith('\n') && Number(written) === child.pid)
            return child;
        if (Date.now() > deadline) {
            await kill(child);
            throw new Error(`sshd did not listen on port ${port} within ${START_TIMEOUT_MS} ms: ${stderr.trim()}`);
        }
        await sleep(10);
    }
}
/**
 * Ends sshd and every process under it (the connections). Deepest first, each level gone before the next:
 * a parent killed before its child leaves the child to PID 1, which in a container often reaps nothing,
 * so it would stay a zombie. SIGTERM, then SIGKILL for what is left after a while.
 */
async function kill(child) {
    const pid = child.pid;
    if (pid === undefined || child.exitCode !== null || child.signalCode !== null)
        return;
    const exited = new Promise((resolve) => child.once('exit', () => resolve()));
    // Again while connections appear (one being accepted as the first sweep ran), a few times at most.
    for (let sweep = 0; sweep < 3; sweep++) {
        const levels = (await processTree(pid)).slice(1);
        if (levels.length === 0)
            break;
        for (const level of levels.reverse()) {
            signal(level, 'SIGTERM');
            if (!(await gone(level, STOP_TIMEOUT_MS))) {
                signal(level, 'SIGKILL');
                await gone(level, STOP_TIMEOUT_MS);
            }
        }
    }
    signal([pid], 'SIGTERM');
    const timer = setTimeout(() => signal([pid], 'SIGKILL'), STOP_TIMEOUT_MS);
    try {
        await exited;
    }
    finally {
        clearTimeout(timer);
    }
}
function signal(pids, sig) {
    for (const p of pids) {
        try {
            process.kill(p, sig);
        }
        catch {
            // already gone
        }
    }
}
/** Waits until every pid is reaped by its parent (a zombie still answers kill(pid, 0)). */
async function gone(pids, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (pids.some(alive)) {
        if (Date.now() > deadline)
            return false;
        await sleep(5);
    }
    return true;
}
function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    }
    catch {
        return false;
    }
}
/** The process tree under root by depth ([[root], [children], [grandchildren], …]), from /proc (Linux). */
async function processTree(root) {
    let entries;
    try {
        entries = await readdir('/proc');
    }
    catch {
        return [[root]];
    }
    const children = new Map();
    await Promise.all(entries
        .filter((e) => /^\d+$/.test(e))
        .map(async (e) => {
        try {
            const stat = await readFile(`/proc/${e}/stat`, 'utf8');
            // pid (comm) state ppid …; comm may hold spaces and parentheses, so parse after the last ')'.
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            const list = children.get(ppid) ?? [];
            list.push(Number(e));
            children.set(ppid, list);
        }
        catch {
            // exited meanwhile
        }
    }));
    const levels = [[root]];
    for (;;) {
        const next = (levels.at(-1) ?? []).flatMap((p) => children.get(p) ?? []);
        if (next.length === 0)
            return levels;
        levels.push(next);
    }
}
