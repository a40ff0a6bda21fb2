/** `mcp-secure mcp`: its flags, examples and validated options; the work is in ../mcp.ts. */
import { checkTenantName } from '../../config/schema.js';
import {
  act,
  Command,
  type CommandContext,
  examples,
  type ProfileFlags,
  profileFlags,
  type Runner,
  roleOption,
  sshTransportOption,
  storageOption,
  tenantOption,
} from './shared.js';

export interface McpOptions {
  tenant: string;
  role: 'member' | 'admin';
  acceptNewHostKey: boolean;
  /** `--ssh-transport`: undefined leaves it to the profile's ssh_transport (default auto). */
  sshTransport: 'auto' | 'openssh' | 'ssh2' | undefined;
  /** `--own-tunnel`: this process's own token and SSH connection instead of the agent's shared one. */
  ownTunnel: boolean;
  flags: ProfileFlags;
}

export function mcpCommand(ctx: CommandContext, runF?: Runner<McpOptions>) {
  return new Command('mcp')
    .description(
      "the tenant's MCP server over stdio, for MCP clients that spawn it (no local port; see mcp-config)",
    )
    .addOption(tenantOption())
    .addOption(roleOption())
    .option(
      '--accept-new-host-key',
      'trust an unknown SSH host key on first use and record it (like StrictHostKeyChecking=accept-new)',
    )
    .addOption(sshTransportOption())
    .option(
      '--own-tunnel',
      "this process's own tenant token and SSH connection, not the one the agent shares between `mcp` processes of the tenant",
    )
    .option('--no-dpop', 'do not use DPoP for this session')
    .addOption(storageOption())
    .addHelpText(
      'after',
      examples([
        'mcp-secure mcp --tenant acme     # spawned by an MCP client: JSON-RPC on stdin/stdout, no port',
        'mcp-secure mcp --tenant acme --own-tunnel   # its own SSH connection instead of the shared one',
        'mcp-secure mcp-config --client claude-code --tenant acme --write   # writes that command for you',
      ]),
    )
    .action((flags, cmd) => {
      const opts: McpOptions = {
        tenant: checkTenantName(flags.tenant),
        role: flags.role ?? 'member',
        acceptNewHostKey: flags.acceptNewHostKey === true,
        sshTransport: flags.sshTransport,
        // An admin session's step-up is this process's own: never shared.
        ownTunnel: flags.ownTunnel === true || flags.role === 'admin',
        flags: profileFlags(flags),
      };
      return act(ctx, cmd, opts, async () => runF ?? (await import('../mcp.js')).run);
    });
}
