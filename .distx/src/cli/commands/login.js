import { CliError } from '../../errors.js';
import { act, Command, clientIdOption, examples, insecureHttpOption, issuerOption, profileFlags, storageOption, } from './shared.js';
export function loginCommand(ctx, runF) {
    return new Command('login')
        .description('sign in with your identity provider (browser + PKCE, or the device flow)')
        .option('--device', 'use the device flow: sign in on any device with a code')
        .option('--browser', 'open a browser on this machine (authorization code + PKCE)')
        .addOption(storageOption())
        .option('--scope <scopes>', 'extra scopes besides "openid offline_access" (space or comma separated)')
        .option('--timeout <seconds>', 'how long to wait for the sign-in')
        .option('--callback-port <ports>', 'browser login: listen on this fixed port (or the first free of several) for the exact redirect URI your IdP has registered')
        .option('--no-dpop', 'do not bind the tokens to a DPoP key even where the IdP offers it')
        .addOption(issuerOption())
        .addOption(clientIdOption())
        .addOption(insecureHttpOption())
        .addHelpText('after', examples([
        'mcp-secure login',
        'mcp-secure login --device --profile work     # a code to type on your phone or laptop',
        'mcp-secure login --storage memory            # keep the login in this process only',
    ]))
        .action((flags, cmd) => {
        if (flags.device && flags.browser) {
            throw new CliError('usage', '--device and --browser cannot be used together', { hint: 'pick one' });
        }
        const flow = flags.device ? 'device' : flags.browser ? 'browser' : 'auto';
        const opts = { flow, flags: profileFlags(flags) };
        return act(ctx, cmd, opts, async () => runF ?? (await import('../login.js')).runLogin);
    });
}
