/** `mcp-secure completion SHELL`: its argument and examples; the scripts are in ../completion.ts. */
import { Argument, act, Command, examples } from './shared.js';
export const SHELLS = ['bash', 'zsh', 'fish'];
export function completionCommand(ctx, runF) {
    return new Command('completion')
        .description('print a shell completion script (commands, flags, profiles, tenants)')
        .addArgument(new Argument('<shell>', 'your shell').choices(SHELLS))
        .addHelpText('after', examples([
        'mcp-secure completion bash > ~/.local/share/bash-completion/completions/mcp-secure',
        'mcp-secure completion zsh > ~/.zfunc/_mcp-secure   # with fpath+=(~/.zfunc) before compinit in ~/.zshrc',
        'mcp-secure completion fish > ~/.config/fish/completions/mcp-secure.fish',
    ]))
        .action((shell, _flags, cmd) => act(ctx, cmd, { shell }, async () => runF ?? (await import('../completion.js')).runCompletion));
}
