/** `mcp-secure config [show|set|unset|use|list]`: arguments and examples; the work is in ../config.ts. */
import { act, Command, examples } from './shared.js';
export function configCommand(ctx, runF) {
    const run = async () => runF ?? (await import('../config.js')).runConfig;
    const config = new Command('config')
        .description('show the effective profile and where each value comes from; change profiles')
        .addHelpText('after', examples([
        'mcp-secure config',
        'mcp-secure config set issuer https://login.example.com --profile work',
        'mcp-secure config use work',
    ]))
        .action((_flags, cmd) => act(ctx, cmd, { action: 'show' }, run));
    config.addCommand(new Command('show')
        .description('show the effective profile (the default)')
        .addHelpText('after', examples(['mcp-secure config show', 'mcp-secure config show --profile work --json']))
        .action((_flags, cmd) => act(ctx, cmd, { action: 'show' }, run)));
    config.addCommand(new Command('set')
        .description('set a value in your user config (creates the profile)')
        .argument('<key>', 'issuer, client_id, scopes, storage, insecure_http, login_timeout or login_flow')
        .argument('<value>')
        .addHelpText('after', examples([
        'mcp-secure config set client_id 0oa1b2c3d4 --profile work',
        'mcp-secure config set bastion ops@bastion.example.com',
    ]))
        .action((key, value, _flags, cmd) => act(ctx, cmd, { action: 'set', key, value }, run)));
    config.addCommand(new Command('unset')
        .description('remove a value from your user config')
        .argument('<key>')
        .addHelpText('after', examples(['mcp-secure config unset scopes --profile work', 'mcp-secure config unset jump']))
        .action((key, _flags, cmd) => act(ctx, cmd, { action: 'unset', key }, run)));
    config.addCommand(new Command('use')
        .description('make a profile the default')
        .argument('<profile>')
        .addHelpText('after', examples(['mcp-secure config use work', 'mcp-secure config use default']))
        .action((profile, _flags, cmd) => act(ctx, cmd, { action: 'use', profile }, run)));
    config.addCommand(new Command('list')
        .description('list the profiles')
        .addHelpText('after', examples(['mcp-secure config list', 'mcp-secure config list --json']))
        .action((_flags, cmd) => act(ctx, cmd, { action: 'list' }, run)));
    return config;
}
