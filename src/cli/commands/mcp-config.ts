/** `mcp-secure mcp-config`: its flags, examples and validated options; the work is in ../mcp-config.ts. */
import { CliError, sanitize } from '../../errors.js';
import { act, Command, type CommandContext, examples, Option, type Runner } from './shared.js';

export const CLIENTS = ['claude-desktop', 'claude-code', 'cursor', 'vscode'] as const;
export type McpClient = (typeof CLIENTS)[number];
export const SCOPES = ['project', 'user'] as const;
export type Scope = (typeof SCOPES)[number];

export interface McpConfigOptions {
  client: McpClient;
  name: string;
  /** undefined: the profile's local_port. */
  port: number | undefined;
  scope: Scope | undefined;
  write: boolean;
  dryRun: boolean;
}

export function mcpConfigCommand(ctx: CommandContext, runF?: Runner<McpConfigOptions>) {
  return new Command('mcp-config')
    .description("print (or --write) an MCP client's config for the local tunnel; it holds no secret")
    .addOption(new Option('--client <client>', 'the MCP client').choices(CLIENTS).makeOptionMandatory())
    .option('--name <name>', "the server name in the client's config", 'mcp-secure')
    .option('--port <port>', "the local port (default: the profile's local_port, 7700)")
    .addOption(
      new Option(
        '--scope <scope>',
        'project (this directory) or user (every project); default per client',
      ).choices(SCOPES),
    )
    .option('--write', "merge into the client's config file (a backup first), keeping everything else there")
    .option('--dry-run', 'print the whole merged file --write would write, and write nothing')
    .addHelpText(
      'after',
      examples([
        'mcp-secure mcp-config --client claude-code --write     # ./.mcp.json',
        'mcp-secure mcp-config --client claude-desktop --write  # backup first, other servers kept',
        'mcp-secure mcp-config --client vscode --port 7701',
      ]),
    )
    .action((flags, cmd) => {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(flags.name)) {
        throw new CliError('usage', `invalid --name "${sanitize(flags.name, 40)}"`, {
          hint: 'letters, digits, ".", "_" and "-"',
        });
      }
      const port = flags.port === undefined ? undefined : Number(flags.port);
      if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
        throw new CliError('usage', 'invalid --port', { hint: 'use a port number, e.g. 7700' });
      }
      const opts: McpConfigOptions = {
        client: flags.client,
        name: flags.name,
        port,
        scope: flags.scope,
        write: flags.write === true,
        dryRun: flags.dryRun === true,
      };
      return act(ctx, cmd, opts, async () => runF ?? (await import('../mcp-config.js')).runMcpConfig);
    });
}
