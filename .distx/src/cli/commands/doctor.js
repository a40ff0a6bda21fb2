/** `mcp-secure doctor`: its description and examples; the checks are in ../doctor.ts. */
import { act, Command, examples } from './shared.js';
export function doctorCommand(ctx, runF) {
    return new Command('doctor')
        .description('check config, IdP, keychain, ssh-agent, host keys, port, tmux and clock; each ✗ with its fix')
        .addHelpText('after', examples([
        'mcp-secure doctor',
        'mcp-secure doctor --profile work --json | jq \'.checks[] | select(.status == "fail")\'',
    ]))
        .action((_flags, cmd) => act(ctx, cmd, {}, async () => runF ?? (await import('../doctor.js')).runDoctor));
}
