/**
 * Keeping secrets out of core dumps. A crash with core dumps on (`ulimit -c unlimited`, a distribution's
 * default under systemd-coredump or apport) writes the process's memory to disk: the refresh and tenant
 * tokens, the DPoP private key. Node has no setrlimit(RLIMIT_CORE) and no prctl(PR_SET_DUMPABLE) without a
 * native module, but on Linux a process may set its own /proc/self/coredump_filter (proc(5), core(5)): 0
 * leaves every memory mapping out of the dump (anonymous and file-backed, private and shared, huge pages),
 * so a core holds registers and notes only. Children inherit it. Other platforms: see docs/security.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
/** Called once at start-up from bin/mcp-secure.js, before any secret is in memory. */
export function excludeMemoryFromCoreDumps(platform) {
    if (platform !== 'linux')
        return;
    try {
        writeFileSync('/proc/self/coredump_filter', '0');
    }
    catch {
        // A /proc without it (old kernel, a sandbox): doctor reports it.
    }
}
/** The soft core-size limit from /proc/self/limits ("0", "unlimited", a byte count), if readable. */
function softCoreLimit() {
    try {
        const line = readFileSync('/proc/self/limits', 'utf8')
            .split('\n')
            .find((l) => l.startsWith('Max core file size'));
        return line?.slice('Max core file size'.length).trim().split(/\s+/)[0];
    }
    catch {
        return undefined;
    }
}
/** What a crash of this process would write, for `doctor`. */
export function coreDumpState(platform) {
    if (platform !== 'linux') {
        return {
            status: 'exposed',
            softLimit: 'unknown',
            reason: `${platform} gives a Node process no way to turn core dumps off`,
        };
    }
    const softLimit = softCoreLimit() ?? 'unknown';
    if (softLimit === '0')
        return { status: 'off', softLimit };
    try {
        const filter = Number.parseInt(readFileSync('/proc/self/coredump_filter', 'utf8').trim(), 16);
        if (filter === 0)
            return { status: 'filtered', softLimit };
        return { status: 'exposed', softLimit, reason: `coredump_filter is 0x${filter.toString(16)}` };
    }
    catch {
        return { status: 'exposed', softLimit, reason: '/proc/self/coredump_filter is not readable' };
    }
}
