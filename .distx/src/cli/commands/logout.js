/** `mcp-secure logout`: its flags and examples; the work is in ../logout.ts. */
import { act, Command, clientIdOption, examples, insecureHttpOption, issuerOption, profileFlags, storageOption, } from './shared.js';
export function logoutCommand(ctx, runF) {
    return new Command('logout')
        .description('revoke the refresh token at the IdP (RFC 7009) and delete it from the store')
        .addOption(storageOption())
        .addOption(issuerOption())
        .addOption(clientIdOption())
        .addOption(insecureHttpOption())
        .addHelpText('after', examples(['mcp-secure logout', 'mcp-secure logout --profile work']))
        .action((flags, cmd) => act(ctx, cmd, { flags: profileFlags(flags) }, async () => runF ?? (await import('../logout.js')).runLogout));
}
