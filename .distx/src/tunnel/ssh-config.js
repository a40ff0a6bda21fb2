/**
 * The part of ~/.ssh/config a tunnel needs: `Host` blocks (patterns, negations), `HostName`, `User`,
 * `Port`, `IdentityFile`, `ProxyJump`, `ServerAliveInterval` and `ServerAliveCountMax`, first value wins as
 * in OpenSSH. `Match` blocks are skipped.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError, sanitize } from '../errors.js';
import { globMatch } from './glob.js';
/** A non-negative whole number from the config, or undefined for anything else (OpenSSH would refuse it). */
function count(text) {
    return text !== undefined && /^\d{1,6}$/.test(text) ? Number(text) : undefined;
}
function parse(text) {
    const blocks = [{ patterns: ['*'], options: [] }];
    let skipping = false;
    for (const raw of text.split('\n')) {
        const line = raw.trim();
        if (!line || line.startsWith('#'))
            continue;
        const m = line.match(/^(\S+?)\s*(?:=\s*|\s+)(.*)$/);
        if (!m)
            continue;
        const key = m[1].toLowerCase();
        const value = m[2].trim().replace(/^"(.*)"$/, '$1');
        if (key === 'host') {
            skipping = false;
            blocks.push({ patterns: value.split(/\s+/), options: [] });
        }
        else if (key === 'match') {
            skipping = true;
        }
        else if (!skipping) {
            blocks[blocks.length - 1].options.push([key, value]);
        }
    }
    return blocks;
}
function patternMatches(patterns, host) {
    let matched = false;
    for (const p of patterns) {
        const negated = p.startsWith('!');
        if (globMatch(negated ? p.slice(1) : p, host)) {
            if (negated)
                return false;
            matched = true;
        }
    }
    return matched;
}
function expandPath(path, home, host) {
    const expanded = path
        .replace(/^~(?=\/|$)/, home)
        .replace(/%d/g, home)
        .replace(/%h/g, host.hostName)
        .replace(/%r/g, host.user ?? '')
        .replace(/%%/g, '%');
    return expanded.startsWith('/') ? expanded : join(home, '.ssh', expanded);
}
/** A TCP port, or a usage error naming where the bad value came from (never NaN handed to ssh2). */
function portNumber(text, where) {
    const port = Number(text);
    if (/^\d{1,5}$/.test(text) && port >= 1 && port <= 65535)
        return port;
    throw new CliError('usage', `${sanitize(where, 200)} is not a port number: "${sanitize(text, 20)}"`, {
        hint: 'use a number from 1 to 65535',
    });
}
/** Parses `[user@]host[:port]` (IPv6 in brackets). */
export function parseDestination(text) {
    const at = text.lastIndexOf('@');
    const user = at >= 0 ? text.slice(0, at) : undefined;
    const rest = at >= 0 ? text.slice(at + 1) : text;
    const bracketed = rest.match(/^\[([^\]]+)\](?::(\d+))?$/);
    if (bracketed)
        return { user, host: bracketed[1], port: bracketed[2] ? Number(bracketed[2]) : undefined };
    const colon = rest.lastIndexOf(':');
    if (colon > 0 && rest.indexOf(':') === colon && /^\d+$/.test(rest.slice(colon + 1))) {
        return { user, host: rest.slice(0, colon), port: Number(rest.slice(colon + 1)) };
    }
    return { user, host: rest, port: undefined };
}
export async function loadSshConfig(home, file = join(home, '.ssh', 'config')) {
    let blocks = [];
    try {
        blocks = parse(await readFile(file, 'utf8'));
    }
    catch {
        // no ssh config: every host is taken as written
    }
    return (destination) => {
        const { user, host, port: given } = parseDestination(destination);
        const port = given === undefined ? undefined : portNumber(String(given), `the port of ${destination}`);
        const first = new Map();
        const identityFiles = [];
        for (const block of blocks) {
            if (!patternMatches(block.patterns, host))
                continue;
            for (const [key, value] of block.options) {
                if (key === 'identityfile')
                    identityFiles.push(value);
                else if (!first.has(key))
                    first.set(key, value);
            }
        }
        const spec = {
            alias: host,
            hostName: (first.get('hostname') ?? host).replace(/%h/g, host),
            user: user ?? first.get('user'),
            port: port ?? (first.has('port') ? portNumber(first.get('port'), `Port for ${host} in ${file}`) : 22),
            identityFiles: [],
            proxyJump: [],
        };
        const interval = count(first.get('serveraliveinterval'));
        const countMax = count(first.get('serveralivecountmax'));
        if (interval !== undefined)
            spec.serverAliveInterval = interval;
        if (countMax !== undefined && countMax > 0)
            spec.serverAliveCountMax = countMax;
        spec.identityFiles = identityFiles.map((f) => expandPath(f, home, spec));
        const jump = first.get('proxyjump');
        if (jump && jump.toLowerCase() !== 'none')
            spec.proxyJump = jump
                .split(',')
                .map((j) => j.trim())
                .filter(Boolean);
        return spec;
    };
}
