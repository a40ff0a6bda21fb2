/**
 * `mcp-secure mcp-config --client X --tenant T`: the MCP client configuration for a tenant. By default a
 * stdio entry: the client spawns `mcp-secure mcp --tenant T` itself (no port, no `connect` to start),
 * named by the absolute paths of this Node and this installed CLI, so nothing is looked up on PATH or
 * fetched at run time. `--transport http` gives today's URL entry for a running `connect`. Neither holds
 * a secret. `--write` merges it into the client's own file, keeping everything that was there, and
 * refuses a file or directory that is a symbolic link (a repository can plant `.mcp.json ->
 * ~/.claude.json`).
 */
import { constants } from 'node:fs';
import { lstat, open, realpath, writeFile } from 'node:fs/promises';
import { join, posix, relative, win32 } from 'node:path';
import { writeFileAtomic } from '../config/load.js';
import { CliError } from '../errors.js';
import { CLIENTS, SCOPES, TRANSPORTS, } from './commands/mcp-config.js';
import { loadProfile } from './context.js';
import { Ui } from './ui.js';
export { CLIENTS, SCOPES, TRANSPORTS };
const CLIENT_NAMES = {
    'claude-desktop': 'Claude Desktop',
    'claude-code': 'Claude Code',
    cursor: 'Cursor',
    vscode: 'VS Code',
};
/** The per-user application-data directory: ~/Library/Application Support, %APPDATA%, $XDG_CONFIG_HOME. */
function appData(deps, app) {
    if (deps.platform === 'darwin')
        return join(deps.homedir, 'Library', 'Application Support', app);
    if (deps.platform === 'win32')
        return join(deps.env['APPDATA'] ?? join(deps.homedir, 'AppData', 'Roaming'), app);
    return join(deps.env['XDG_CONFIG_HOME'] || join(deps.homedir, '.config'), app);
}
/** Where each client keeps its servers (checked against each client's documentation, 2025-2026). */
export const DEFAULT_SCOPE = {
    'claude-desktop': 'user',
    'claude-code': 'project',
    cursor: 'user',
    vscode: 'project',
};
export function clientTarget(client, server, deps, scope = DEFAULT_SCOPE[client]) {
    const stdio = typeof server === 'string' ? undefined : server;
    const url = typeof server === 'string' ? server : '';
    switch (client) {
        case 'claude-desktop': {
            if (scope !== 'user') {
                throw new CliError('usage', 'Claude Desktop has only a per-user config', { hint: 'drop --scope' });
            }
            // Claude Desktop's config file starts local (stdio) servers only. Earlier versions wrote
            // `npx -y mcp-remote URL`: an unpinned package fetched at run time into the token path; gone.
            // macOS ~/Library/Application Support/Claude, Windows %APPDATA%\Claude, Linux ~/.config/Claude.
            if (!stdio) {
                throw new CliError('usage', "Claude Desktop's config file starts stdio servers only", {
                    hint: 'drop --transport http (the default stdio entry needs no running connect)',
                });
            }
            return {
                file: join(appData(deps, 'Claude'), 'claude_desktop_config.json'),
                key: 'mcpServers',
                entry: { command: stdio.command, args: stdio.args },
                scope,
            };
        }
        case 'claude-code':
            // project: .mcp.json at the project root (shared through git); user: ~/.claude.json's top-level
            // mcpServers (every project). `"type": "stdio"` with command/args, or `"type": "http"` with a url.
            return {
                file: scope === 'user' ? join(deps.homedir, '.claude.json') : join(deps.cwd, '.mcp.json'),
                key: 'mcpServers',
                entry: stdio ? { type: 'stdio', command: stdio.command, args: stdio.args } : { type: 'http', url },
                scope,
            };
        case 'cursor':
            // user: ~/.cursor/mcp.json; project: .cursor/mcp.json. command/args is a local server, url a remote.
            return {
                file: scope === 'user'
                    ? join(deps.homedir, '.cursor', 'mcp.json')
                    : join(deps.cwd, '.cursor', 'mcp.json'),
                key: 'mcpServers',
                entry: stdio ? { command: stdio.command, args: stdio.args } : { url },
                scope,
            };
        case 'vscode':
            // project: .vscode/mcp.json; user: mcp.json in the user profile (Code/User). Top-level `servers`.
            return {
                file: scope === 'user'
                    ? join(appData(deps, 'Code'), 'User', 'mcp.json')
                    : join(deps.cwd, '.vscode', 'mcp.json'),
                key: 'servers',
                entry: stdio ? { type: 'stdio', command: stdio.command, args: stdio.args } : { type: 'http', url },
                scope,
            };
    }
}
/**
 * The stdio command for this installation: this Node (process.execPath) running this CLI's bin script,
 * both absolute. node.exe is spawned directly on Windows too — no `cmd /c`, which only .cmd shims such as
 * `npx` need — so the same shape works everywhere.
 */
export async function stdioServer(deps, args) {
    const [node, script] = deps.self;
    const path = deps.platform === 'win32' ? win32 : posix;
    let bin = script ?? '';
    // The installed file, not a PATH symlink to it (npm's global bin links), where this machine can tell.
    if (deps.platform === process.platform && bin)
        bin = await realpath(bin).catch(() => bin);
    if (!node || !path.isAbsolute(node) || !path.isAbsolute(bin)) {
        throw new CliError('error', 'cannot tell where mcp-secure is installed (no absolute path to it)', {
            hint: 'run the installed `mcp-secure` itself, or use --transport http with `mcp-secure connect`',
        });
    }
    return { command: node, args: [bin, ...args] };
}
/**
 * Refuses to write through a symbolic link: the file itself, or any directory between `root` (the
 * project directory or the home directory) and it. A repository can ship `.mcp.json -> ~/.claude.json`
 * or `.vscode -> ~/somewhere`; following it would copy another file (with its credentials) into the
 * repository as a backup and rewrite it. Issue 13 item 8.
 */
export async function refuseSymlinks(file, root) {
    const rel = relative(root, file);
    const inside = rel !== '' && !rel.startsWith('..') && !posix.isAbsolute(rel) && !win32.isAbsolute(rel);
    const parts = inside ? rel.split(/[\\/]/) : [];
    const checks = [];
    if (inside) {
        let at = root;
        for (const part of parts) {
            at = join(at, part);
            checks.push(at);
        }
    }
    else {
        checks.push(join(file, '..'), file);
    }
    for (const path of checks) {
        const st = await lstat(path).catch((err) => {
            if (err.code === 'ENOENT')
                return undefined;
            throw err;
        });
        if (st?.isSymbolicLink()) {
            throw new CliError('error', `${path} is a symbolic link; not writing through it`, {
                hint: 'print the config without --write and merge it into the real file yourself',
            });
        }
        if (!st)
            return; // nothing below a missing directory can be a link yet
    }
}
/** `file.bak-20260123T101500Z`: one backup per write, none overwritten. */
export function backupName(file, nowMs) {
    return `${file}.bak-${new Date(nowMs)
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')}`;
}
/** The file's text, or undefined when there is none; never through a symbolic link (O_NOFOLLOW). */
async function readNoFollow(file) {
    let handle;
    try {
        handle = await open(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    }
    catch (err) {
        const code = err.code;
        if (code === 'ENOENT')
            return undefined;
        if (code === 'ELOOP') {
            throw new CliError('error', `${file} is a symbolic link; not writing through it`, {
                hint: 'print the config without --write and merge it into the real file yourself',
            });
        }
        throw err;
    }
    try {
        return await handle.readFile('utf8');
    }
    finally {
        await handle.close();
    }
}
/** The validated options (commands/mcp-config.ts). */
export async function runMcpConfig(globals, opts, deps) {
    const ui = await Ui.create(deps, globals);
    const { client, transport, tenant } = opts;
    // One entry per tenant, so two tenants (and two clients) sit side by side.
    const name = opts.name ?? (tenant ? `mcp-secure-${tenant}` : 'mcp-secure');
    const eff = await loadProfile(deps, globals);
    let server;
    let shown;
    if (transport === 'stdio') {
        server = await stdioServer(deps, ['--profile', eff.name, 'mcp', '--tenant', tenant]);
        shown = `mcp-secure --profile ${eff.name} mcp --tenant ${tenant}`;
    }
    else {
        const port = opts.port ?? eff.profile.local_port;
        if (!Number.isInteger(port) || port < 1 || port > 65535) {
            throw new CliError('usage', 'invalid --port', { hint: 'use a port number, e.g. 7700' });
        }
        const path = eff.profile.mcp_url ? new URL(eff.profile.mcp_url).pathname : '/mcp';
        server = `http://127.0.0.1:${port}${path}`;
        shown = server;
    }
    const target = clientTarget(client, server, deps, opts.scope);
    const snippet = { [target.key]: { [name]: target.entry } };
    const next = transport === 'stdio'
        ? `${CLIENT_NAMES[client]} starts the session itself (log in first: \`mcp-secure login\`).`
        : 'Start the tunnel with `mcp-secure connect --tenant NAME`.';
    if (!opts.write && !opts.dryRun) {
        ui.out(JSON.stringify(snippet, null, 2));
        ui.info(ui.c.dim(`Merge this into ${target.file} (or run again with --write). ${next}`));
        return 0;
    }
    await refuseSymlinks(target.file, target.scope === 'project' ? deps.cwd : deps.homedir);
    let existing = {};
    const original = await readNoFollow(target.file);
    if (original !== undefined) {
        try {
            const parsed = JSON.parse(original);
            if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
                throw new SyntaxError('not an object');
            existing = parsed;
        }
        catch {
            throw new CliError('error', `${target.file} is not a JSON object; not touching it`, {
                hint: 'fix it by hand, or print the config without --write and merge it yourself',
            });
        }
    }
    const current = existing[target.key];
    if (current !== undefined && (typeof current !== 'object' || current === null || Array.isArray(current))) {
        throw new CliError('error', `"${target.key}" in ${target.file} is not an object; not touching it`, {
            hint: 'fix it by hand, or print the config without --write and merge it yourself',
        });
    }
    const servers = current ?? {};
    const replaced = name in servers;
    if (replaced && JSON.stringify(servers[name]) === JSON.stringify(target.entry)) {
        ui.success(`"${name}" in ${target.file} already points at ${shown}; nothing to change.`);
        return 0;
    }
    existing[target.key] = { ...servers, [name]: target.entry };
    const merged = `${JSON.stringify(existing, null, 2)}\n`;
    if (opts.dryRun) {
        ui.out(merged.trimEnd());
        ui.info(ui.c.dim(`--dry-run: this is what --write would put in ${target.file}; nothing was written.`));
        return 0;
    }
    // The user's file is copied aside first (0600: ~/.claude.json and friends may hold credentials of
    // their own), then replaced atomically: a crash leaves the old file or the new one, never half of one.
    let backup = '';
    if (original !== undefined) {
        // 'wx': an existing backup is never overwritten (nor a planted link at its name followed); two writes
        // within a second get a suffix.
        for (let i = 0; i < 10 && !backup; i++) {
            const candidate = `${backupName(target.file, deps.now())}${i ? `.${i}` : ''}`;
            try {
                await writeFile(candidate, original, { mode: 0o600, flag: 'wx' });
                backup = candidate;
            }
            catch (err) {
                if (err.code !== 'EEXIST')
                    throw err;
            }
        }
        if (!backup) {
            throw new CliError('error', `could not write a backup of ${target.file}; not touching it`, {
                hint: 'remove old .bak- files next to it and try again',
            });
        }
    }
    await writeFileAtomic(target.file, merged);
    const kept = Object.keys(servers).filter((k) => k !== name).length;
    ui.success(`${replaced ? 'Updated' : 'Added'} "${name}" in ${target.file} (${shown}); ${kept} other server${kept === 1 ? '' : 's'} and every other setting kept.`);
    if (backup)
        ui.info(`  backup of the previous file: ${backup}`);
    if (transport === 'stdio' && target.scope === 'project') {
        ui.info(ui.c.dim(`  ${target.file} now names paths on this machine; if the project is shared, --scope user keeps them out of it.`));
    }
    ui.info(ui.c.dim(`Restart ${CLIENT_NAMES[client]} to pick it up. ${next}`));
    return 0;
}
