/** `mcp-secure mcp-config`: its flags, examples and validated options; the work is in ../mcp-config.ts. */
import { checkTenantName } from '../../config/schema.js';
import { CliError, sanitize } from '../../errors.js';
import { act, Command, examples, Option } from './shared.js';
export const CLIENTS = ['claude-desktop', 'claude-code', 'cursor', 'vscode'];
export const SCOPES = ['project', 'user'];
/** stdio: the client spawns `mcp-secure mcp --tenant T`; http: the URL of a running `connect`. */
export const TRANSPORTS = ['stdio', 'http'];
export function mcpConfigCommand(ctx, runF) {
    return new Command('mcp-config')
        .description("print (or --write) an MCP client's config for a tenant; it holds no secret")
        .addOption(new Option('--client <client>', 'the MCP client').choices(CLIENTS).makeOptionMandatory())
        .option('-t, --tenant <name>', 'the tenant the entry starts a session for (needed for stdio)')
        .addOption(new Option('--transport <transport>', 'stdio: the client spawns `mcp-secure mcp` (default); http: the URL of a running connect').choices(TRANSPORTS))
        .option('--name <name>', "the server name in the client's config (default: mcp-secure-TENANT)")
        .option('--port <port>', "with --transport http: the local port (default: the profile's local_port, 7700)")
        .addOption(new Option('--scope <scope>', 'project (this directory) or user (every project); default per client').choices(SCOPES))
        .option('--write', "merge into the client's config file (a backup first), keeping everything else there")
        .option('--dry-run', 'print the whole merged file --write would write, and write nothing')
        .addHelpText('after', examples([
        'mcp-secure mcp-config --client claude-code -t acme --write      # ./.mcp.json, spawns `mcp -t acme`',
        'mcp-secure mcp-config --client claude-desktop -t acme --write   # backup first, other servers kept',
        'mcp-secure mcp-config --client vscode --transport http --port 7701   # URL of a running connect',
    ]))
        .action((flags, cmd) => {
        const transport = flags.transport ?? 'stdio';
        const tenant = flags.tenant === undefined ? undefined : checkTenantName(flags.tenant);
        if (transport === 'stdio' && !tenant) {
            throw new CliError('usage', 'which tenant? the stdio entry starts that tenant’s session itself', {
                hint: 'pass `--tenant NAME` (or `--transport http` for a running `connect`)',
            });
        }
        if (transport === 'stdio' && flags.port !== undefined) {
            throw new CliError('usage', '--port is for --transport http; the stdio entry uses no port', {
                hint: 'drop --port, or add --transport http',
            });
        }
        if (flags.name !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(flags.name)) {
            throw new CliError('usage', `invalid --name "${sanitize(flags.name, 40)}"`, {
                hint: 'letters, digits, ".", "_" and "-"',
            });
        }
        const port = flags.port === undefined ? undefined : Number(flags.port);
        if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
            throw new CliError('usage', 'invalid --port', { hint: 'use a port number, e.g. 7700' });
        }
        const opts = {
            client: flags.client,
            transport,
            tenant,
            name: flags.name,
            port,
            scope: flags.scope,
            write: flags.write === true,
            dryRun: flags.dryRun === true,
        };
        return act(ctx, cmd, opts, async () => runF ?? (await import('../mcp-config.js')).runMcpConfig);
    });
}
