/** `mcp-secure connect`: its flags, examples and validated options; the work is in ../connect.ts. */
import { isIP } from 'node:net';
import { checkTenantName } from '../../config/schema.js';
import { CliError, sanitize } from '../../errors.js';
import { isLoopbackHost } from '../../net.js';
import { act, Command, examples, parseDuration, profileFlags, roleOption, sshTransportOption, storageOption, tenantOption, } from './shared.js';
/** A tunnel lives between 1 s and 7 days. */
const TUNNEL_LIFE = { minMs: 1000, maxMs: 7 * 86_400_000, range: '1 s and 7 days' };
export function connectCommand(ctx, runF) {
    return new Command('connect')
        .description('tenant token + SSH tunnel: the in-cluster MCP endpoint on 127.0.0.1:7700 for this tenant')
        .addOption(tenantOption())
        .addOption(roleOption())
        .option('--port <port>', "local port (default: the profile's local_port, 7700)")
        .option('--bind <address>', 'local address to listen on (loopback only unless the unsafe flag is given)')
        .option('--unsafe-allow-non-loopback', 'UNSAFE: allow --bind on a non-loopback address (anyone reaching it uses your session)')
        .option('--unsafe-skip-tls-verify', "UNSAFE: do not verify the https:// MCP server's certificate (anyone inside the cluster's path can read the session)")
        .option('--unsafe-any-local-user', "UNSAFE: serve other Unix users' connections too (skips the check that only your own user connects)")
        .option('--raw', 'a plain TCP forward like `ssh -L` (the client brings its own token)')
        .option('--accept-new-host-key', 'trust an unknown SSH host key on first use and record it (like StrictHostKeyChecking=accept-new)')
        .option('--max-session <duration>', 'end the session after this long (e.g. 8h)')
        .option('--idle-timeout <duration>', 'end the session after this long without traffic (e.g. 30m)')
        .option('--audit-pane', 'show the audit feed of this tenant in a second tmux pane')
        .addOption(sshTransportOption())
        .option('--no-dpop', 'do not use DPoP for this session')
        .addOption(storageOption())
        .addHelpText('after', examples([
        'mcp-secure connect --tenant acme',
        'mcp-secure connect -t acme --audit-pane --idle-timeout 30m   # inside tmux',
        'mcp-secure connect -t globex --port 7701 --json              # NDJSON events on stdout',
    ]))
        .action((flags, cmd) => {
        const opts = connectOptions(flags);
        return act(ctx, cmd, opts, async () => runF ?? (await import('../connect.js')).run);
    });
}
function connectOptions(flags) {
    const portText = flags.port;
    const port = portText === undefined ? undefined : Number(portText);
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
        throw new CliError('usage', `invalid --port "${sanitize(portText, 10)}"`, {
            hint: 'use a port number, e.g. 7701',
        });
    }
    const bind = flags.bind ?? '127.0.0.1';
    const allowNonLoopback = flags.unsafeAllowNonLoopback === true;
    // Checked here, before any token or SSH connection exists.
    if (!isIP(bind)) {
        throw new CliError('usage', `--bind must be an IP address, not "${sanitize(bind, 60)}"`, {
            hint: 'use 127.0.0.1',
        });
    }
    if (!isLoopbackHost(bind) && !allowNonLoopback) {
        throw new CliError('usage', `refusing to listen on ${bind}: anyone who can reach it would use your session`, {
            hint: 'listen on 127.0.0.1 (the default); if you really mean it, add --unsafe-allow-non-loopback',
        });
    }
    return {
        tenant: checkTenantName(flags.tenant),
        role: flags.role ?? 'member',
        port,
        bind,
        allowNonLoopback,
        anyLocalUser: flags.unsafeAnyLocalUser === true,
        raw: flags.raw === true,
        acceptNewHostKey: flags.acceptNewHostKey === true,
        maxSessionMs: flags.maxSession
            ? parseDuration(flags.maxSession, '--max-session', TUNNEL_LIFE)
            : undefined,
        idleTimeoutMs: flags.idleTimeout
            ? parseDuration(flags.idleTimeout, '--idle-timeout', TUNNEL_LIFE)
            : undefined,
        auditPane: flags.auditPane === true,
        unsafeSkipTlsVerify: flags.unsafeSkipTlsVerify === true,
        sshTransport: flags.sshTransport,
        flags: profileFlags(flags),
    };
}
