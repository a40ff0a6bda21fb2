/** `mcp-secure token`: its flags, examples and validated options; the work is in ../token.ts. */
import { checkTenantName } from '../../config/schema.js';
import { act, Command, examples, profileFlags, roleOption, storageOption, tenantOption, } from './shared.js';
export function tokenCommand(ctx, runF) {
    return new Command('token')
        .description('print a short-lived tenant token (RFC 8693) for MCP clients that bring their own')
        .addOption(tenantOption())
        .addOption(roleOption())
        .option('--no-dpop', 'do not use DPoP for this request')
        .addOption(storageOption())
        .addHelpText('after', examples([
        'mcp-secure token --tenant acme --json',
        'mcp-secure token --tenant acme --role admin   # asks for a fresh, strong sign-in first',
    ]))
        .action((flags, cmd) => {
        // Validated before anything touches the network: a bad tenant name is a usage error (exit 2).
        const opts = {
            tenant: checkTenantName(flags.tenant),
            role: flags.role ?? 'member',
            flags: profileFlags(flags),
        };
        return act(ctx, cmd, opts, async () => runF ?? (await import('../token.js')).runToken);
    });
}
