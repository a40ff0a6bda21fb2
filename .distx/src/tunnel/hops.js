/**
 * The SSH hops of a profile: its bastion and jump hosts, each resolved through ~/.ssh/config like
 * OpenSSH's ProxyJump (ssh_config(5)). Used by `connect`, `audit tail` and `doctor`.
 */
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { requireSetting } from '../config/require.js';
const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
function expandHome(path, home) {
    return path.replace(/^~(?=\/|$)/, home);
}
/**
 * The hops from the profile and ~/.ssh/config: jump hosts first, the bastion last. Where `ssh` is installed
 * the configuration is OpenSSH's own answer (`ssh -G`: Include, Match, tokens, canonicalisation exactly as
 * ssh does them); elsewhere the in-process parser (ssh-config.ts).
 */
export async function resolveHops(eff, deps) {
    const bastion = requireSetting(eff, 'bastion', 'the SSH host the MCP endpoint is reached from', 'user@bastion.example.com');
    const { findSsh } = await import('./openssh.js');
    const ssh = await findSsh(deps.env);
    if (ssh)
        return resolveWithSshG(ssh, bastion, eff, deps);
    const { loadSshConfig } = await import('../tunnel/ssh-config.js');
    const home = deps.homedir;
    const resolve = await loadSshConfig(home);
    const main = resolve(bastion);
    const jumps = eff.profile.jump ?? main.proxyJump;
    const defaultUser = deps.env['USER'] ?? userInfo().username;
    const own = eff.profile.identity_file ? [expandHome(eff.profile.identity_file, home)] : [];
    const toHop = (spec) => ({
        host: spec.hostName,
        port: spec.port,
        user: spec.user ?? defaultUser,
        identityFiles: [
            ...own,
            ...(spec.identityFiles.length
                ? spec.identityFiles
                : DEFAULT_IDENTITIES.map((f) => join(home, '.ssh', f))),
        ],
        ...(spec.serverAliveInterval !== undefined
            ? { keepaliveIntervalMs: spec.serverAliveInterval * 1000 }
            : {}),
        ...(spec.serverAliveCountMax !== undefined ? { keepaliveCountMax: spec.serverAliveCountMax } : {}),
    });
    return [...jumps.map((j) => toHop(resolve(j))), toHop(main)];
}
const MAX_JUMP_DEPTH = 8;
/** `ssh -G` for one destination, reading the same files the OpenSSH transport's generated config does. */
async function sshG(ssh, destination, deps) {
    const { sshG: run, sshDestination } = await import('./openssh.js');
    const { readFile } = await import('node:fs/promises');
    const userConfig = join(deps.homedir, '.ssh', 'config');
    // OpenSSH finds ~ from the password database; name the home the CLI uses (openssh.ts does the same).
    const ownHome = deps.homedir !== userInfo().homedir;
    const exists = await readFile(userConfig, 'utf8').then(() => true, () => false);
    const args = ownHome ? ['-F', exists ? userConfig : '/dev/null'] : [];
    return run(ssh, [...args, '--', sshDestination(destination)], deps.env);
}
async function resolveWithSshG(ssh, bastion, eff, deps) {
    const home = deps.homedir;
    const own = eff.profile.identity_file ? [expandHome(eff.profile.identity_file, home)] : [];
    const one = (key, m) => m.get(key)?.[0];
    // ssh -G prints ~ as is in some paths and expanded from the password database in others: both name the
    // home the rest of the CLI uses (they differ only when $HOME is not the account's home).
    const passwdHome = userInfo().homedir;
    const ownHome = (f) => expandHome(f, home).replace(new RegExp(`^${passwdHome.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/\\.ssh/)`), home);
    const toHop = (m) => {
        const interval = Number(one('serveraliveinterval', m));
        const countMax = Number(one('serveralivecountmax', m));
        const proxy = one('proxycommand', m);
        const alias = one('hostkeyalias', m);
        const known = [
            ...(one('userknownhostsfile', m)?.split(/\s+/) ?? []),
            ...(one('globalknownhostsfile', m)?.split(/\s+/) ?? []),
        ].map((f) => ownHome(f));
        return {
            host: one('hostname', m) ?? bastion,
            port: Number(one('port', m) ?? 22),
            user: one('user', m) ?? deps.env['USER'] ?? userInfo().username,
            identityFiles: [...own, ...(m.get('identityfile') ?? []).map((f) => ownHome(f))],
            ...(Number.isFinite(interval) ? { keepaliveIntervalMs: interval * 1000 } : {}),
            ...(Number.isFinite(countMax) && countMax > 0 ? { keepaliveCountMax: countMax } : {}),
            ...(proxy && proxy !== 'none' ? { proxyCommand: proxy } : {}),
            ...(alias && alias !== 'none' ? { hostKeyAlias: alias } : {}),
            ...(known.length ? { knownHostsFiles: known } : {}),
            ...(one('identitiesonly', m) === 'yes' ? { identitiesOnly: true } : {}),
        };
    };
    // ProxyJump like OpenSSH: the first jump with its own jumps, the others as given, then the host.
    const chain = async (destination, depth) => {
        const m = await sshG(ssh, destination, deps);
        const jumpText = depth === 0 && eff.profile.jump ? eff.profile.jump.join(',') : one('proxyjump', m);
        const jumps = jumpText && jumpText !== 'none' ? jumpText.split(',').filter(Boolean) : [];
        if (jumps.length === 0 || depth >= MAX_JUMP_DEPTH)
            return [toHop(m)];
        const first = await chain(jumps[0], depth + 1);
        const rest = await Promise.all(jumps.slice(1).map(async (j) => toHop(await sshG(ssh, j, deps))));
        return [...first, ...rest, toHop(m)];
    };
    return chain(bastion, 0);
}
