/** `mcp-secure status`: its flags and examples; the work is in ../status.ts. */
import { act, Command, examples, profileFlags, storageOption, } from './shared.js';
export function statusCommand(ctx, runF) {
    return new Command('status')
        .description('who is signed in, where the token is kept, and when it expires (never a token value)')
        .addOption(storageOption())
        .addHelpText('after', examples(['mcp-secure status', 'mcp-secure status --json | jq .access_expires_at']))
        .action((flags, cmd) => act(ctx, cmd, { flags: profileFlags(flags) }, async () => runF ?? (await import('../status.js')).runStatus));
}
