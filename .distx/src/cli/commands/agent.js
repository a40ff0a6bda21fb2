/** `mcp-secure agent start|status|stop|run`: its subcommands and examples; the work is in ../agent.ts. */
import { act, Command, examples } from './shared.js';
export function agentCommand(ctx, runF) {
    const run = async () => runF ?? (await import('../agent.js')).runAgent;
    const agent = new Command('agent')
        .description('the per-user process that holds your logins in memory (started on demand)')
        .addHelpText('after', examples([
        'mcp-secure agent status',
        'mcp-secure agent stop       # the logins it holds only in memory end',
    ]));
    agent.addCommand(new Command('start')
        .description('start the agent now (commands that need a login start it anyway)')
        .addHelpText('after', examples(['mcp-secure agent start', 'mcp-secure agent start --json   # {"pid": …, "socket": …}']))
        .action((_flags, cmd) => act(ctx, cmd, { action: 'start' }, run)));
    agent.addCommand(new Command('status')
        .description('whether the agent runs, its pid and socket, and which logins it holds (exit 3: not running)')
        .addHelpText('after', examples(['mcp-secure agent status', 'mcp-secure agent status --json | jq .profiles']))
        .action((_flags, cmd) => act(ctx, cmd, { action: 'status' }, run)));
    agent.addCommand(new Command('stop')
        .description('stop the agent: the logins it holds only in memory end')
        .addHelpText('after', examples([
        'mcp-secure agent stop',
        'mcp-secure agent stop --profile work   # the same agent: one per config dir',
    ]))
        .action((_flags, cmd) => act(ctx, cmd, { action: 'stop' }, run)));
    agent.addCommand(new Command('run')
        .description('run the agent in the foreground (what on-demand start runs, detached)')
        .option('--quiet-start', 'print nothing (the detached agent has no terminal)')
        .addHelpText('after', examples([
        'mcp-secure agent run                     # in the foreground, e.g. under a service manager',
        'MCP_SECURE_AGENT_IDLE_TIMEOUT=0 mcp-secure agent run',
    ]))
        .action((flags, cmd) => act(ctx, cmd, { action: 'run', quietStart: flags.quietStart === true }, run)), { hidden: true });
    return agent;
}
