/**
 * Where the agent listens, and the checks that make the socket reachable by this user only.
 *
 * The kernel enforces who may connect: connecting to a Unix socket needs search permission on every
 * directory of its path and write permission on the socket (unix(7)). The socket lives in a directory of
 * its own, owned by this user and mode 0700, so no other uid (root aside) can reach it; the socket itself
 * is 0600. Node has no SO_PEERCRED, so the agent cannot ask the kernel who connected; instead each client
 * also proves it can read a 0600 cookie file in that directory (see agent-client.ts), which holds even if
 * the socket is ever exposed some other way (a bind mount into a container, a loosened directory).
 * Both sides check owner and modes before trusting the directory, the socket or the cookie.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError } from '../errors.js';
/**
 * One agent per user and config directory: the socket's name comes from the config directory's hash, so
 * a throwaway config (MCP_SECURE_CONFIG_DIR, the demo's, the tests') never talks to the user's own agent.
 */
export function agentPaths(env, configDir) {
    // XDG Base Directory spec: a relative XDG_RUNTIME_DIR is invalid and ignored.
    const runtimeDir = env['XDG_RUNTIME_DIR']?.startsWith('/') ? env['XDG_RUNTIME_DIR'] : undefined;
    const runtime = runtimeDir !== undefined;
    const dir = runtimeDir !== undefined ? join(runtimeDir, 'mcp-secure') : join(configDir, 'state', 'agent');
    const name = `agent-${createHash('sha256').update(configDir).digest('hex').slice(0, 12)}`;
    return {
        dir,
        socket: join(dir, `${name}.sock`),
        cookie: join(dir, `${name}.cookie`),
        lock: join(dir, `${name}.lock`),
        runtime,
    };
}
function uid() {
    return typeof process.getuid === 'function' ? process.getuid() : undefined;
}
function modeText(mode) {
    return `0${(mode & 0o777).toString(8)}`;
}
/**
 * The directory must be a real directory (not a symlink), owned by this user, with no access for group
 * or others. Created 0700 when missing and `create` is set. Returns false when it is missing.
 */
export async function checkAgentDir(paths, create) {
    let info = await lstat(paths.dir).catch((err) => {
        if (err.code === 'ENOENT')
            return undefined;
        throw err;
    });
    if (!info) {
        if (!create)
            return false;
        await mkdir(paths.dir, { recursive: true, mode: 0o700 });
        info = await lstat(paths.dir);
    }
    const me = uid();
    if (!info.isDirectory()) {
        throw new CliError('trust', `refusing the agent directory ${paths.dir}: it is not a directory`, {
            hint: `remove it (\`rm ${paths.dir}\`) and run the command again`,
        });
    }
    if (me !== undefined && info.uid !== me) {
        throw new CliError('trust', `refusing the agent directory ${paths.dir}: it is owned by uid ${info.uid}, not you (uid ${me})`, { hint: `another user may be trying to impersonate the agent; remove ${paths.dir} and run again` });
    }
    if ((info.mode & 0o077) !== 0) {
        throw new CliError('trust', `refusing the agent directory ${paths.dir}: its mode is ${modeText(info.mode)}, so other users can reach it`, { hint: `run \`chmod 700 ${paths.dir}\` (or remove it) and run the command again` });
    }
    return true;
}
/** The socket (or cookie) must be owned by this user and not open to group or others. */
export async function checkAgentFile(path, what) {
    const info = await lstat(path).catch((err) => {
        if (err.code === 'ENOENT')
            return undefined;
        throw err;
    });
    if (!info)
        return false;
    const me = uid();
    const right = what === 'socket' ? info.isSocket() : info.isFile();
    if (!right) {
        throw new CliError('trust', `refusing the agent ${what} ${path}: it is not a ${what === 'socket' ? 'socket' : 'file'}`, {
            hint: `remove it (\`rm ${path}\`) and run the command again`,
        });
    }
    if (me !== undefined && info.uid !== me) {
        throw new CliError('trust', `refusing the agent ${what} ${path}: it is owned by uid ${info.uid}, not you (uid ${me})`, { hint: `another user may be trying to impersonate the agent; remove ${path} and run again` });
    }
    if ((info.mode & 0o077) !== 0) {
        throw new CliError('trust', `refusing the agent ${what} ${path}: its mode is ${modeText(info.mode)}, so other users can use it`, { hint: `stop the agent (\`mcp-secure agent stop\`) or remove ${path}, and run the command again` });
    }
    return true;
}
