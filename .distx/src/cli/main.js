/**
 * The command-line frame: the global options, the commands (each defined in its own module under
 * commands/, its work loaded lazily so `--help` costs little more than Node's own start-up), and the one
 * place where errors become text and exit codes.
 */
import { Command, CommanderError } from 'commander';
import { CliError, EXIT_CODES, redact, sanitize } from '../errors.js';
import { agentCommand } from './commands/agent.js';
import { auditCommand } from './commands/audit.js';
import { completionCommand } from './commands/completion.js';
import { configCommand } from './commands/config.js';
import { connectCommand } from './commands/connect.js';
import { doctorCommand } from './commands/doctor.js';
import { loginCommand } from './commands/login.js';
import { logoutCommand } from './commands/logout.js';
import { mcpCommand } from './commands/mcp.js';
import { mcpConfigCommand } from './commands/mcp-config.js';
import { examples } from './commands/shared.js';
import { statusCommand } from './commands/status.js';
import { tokenCommand } from './commands/token.js';
const VERSION = '0.1.0';
/** The frame: the global options every command sees, and parsing that never calls process.exit. */
export function frame(deps) {
    return new Command('mcp-secure')
        .description('Safe local access to a control-plane MCP server inside a private cluster.')
        .version(VERSION, '-V, --version')
        .option('-p, --profile <name>', 'configuration profile to use (default: the configured default, or "default")')
        .option('--json', 'machine-readable output on stdout')
        .option('--debug', 'diagnostic output on stderr (tokens are always redacted)')
        .option('--no-color', 'no colours (NO_COLOR is honoured too)')
        .showHelpAfterError('(run `mcp-secure --help` for usage)')
        .exitOverride()
        .configureOutput({
        writeOut: (s) => deps.stdout.write(s),
        writeErr: (s) => deps.stderr.write(s),
    })
        .addHelpText('after', examples([
        'mcp-secure login                       # sign in (browser, or a code on a headless machine)',
        'mcp-secure connect --tenant acme       # the MCP endpoint of tenant acme on 127.0.0.1:7700',
        'mcp-secure doctor                      # what is missing, and how to fix it',
    ]));
}
/**
 * Adds a command defined in its own module (commands/*.ts). `addCommand`, unlike `.command()`, does not
 * copy the parent's settings: copy them, so exitOverride and the output streams hold everywhere.
 */
export function mount(parent, sub) {
    parent.addCommand(sub);
    const inherit = (p, c) => {
        c.copyInheritedSettings(p);
        for (const s of c.commands)
            inherit(c, s);
    };
    inherit(parent, sub);
    return parent;
}
export function buildProgram(deps, setCode) {
    const ctx = { deps, setCode };
    const program = frame(deps);
    for (const sub of [
        loginCommand(ctx),
        tokenCommand(ctx),
        connectCommand(ctx),
        mcpCommand(ctx),
        auditCommand(ctx),
        mcpConfigCommand(ctx),
        logoutCommand(ctx),
        statusCommand(ctx),
        agentCommand(ctx),
        configCommand(ctx),
        doctorCommand(ctx),
        completionCommand(ctx),
    ])
        mount(program, sub);
    return program;
}
function causeChain(err) {
    const lines = [];
    let e = err;
    for (let depth = 0; depth < 6 && e; depth++) {
        if (e instanceof Error) {
            const code = e.code;
            lines.push(`${e.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${e.message}`);
            e = e.cause;
        }
        else {
            break;
        }
    }
    return lines;
}
/** Runs the CLI; never calls process.exit. Resolves the exit code. */
export async function main(argv, deps) {
    let code = 0;
    const program = buildProgram(deps, (c) => {
        code = c;
    });
    const debug = argv.includes('--debug');
    const noColor = argv.includes('--no-color') || Boolean(deps.env['NO_COLOR']) || !deps.stderrIsTTY;
    const paint = (s) => (noColor ? s : `\u001b[31m${s}\u001b[39m`);
    try {
        // What the completion scripts call on each <Tab>: candidates for the words typed so far, one a
        // line. Handled before commander, which would otherwise parse the words as this run's own flags.
        if (argv[0] === '__complete') {
            const { complete } = await import('./completion.js');
            const candidates = await complete(program, argv.slice(1), deps, undefined);
            deps.stdout.write(candidates.length ? `${candidates.join('\n')}\n` : '');
            return EXIT_CODES.ok;
        }
        await program.parseAsync(argv, { from: 'user' });
        return code;
    }
    catch (err) {
        if (err instanceof CommanderError) {
            // help and version "errors" are successes; everything else commander reports is a usage error.
            if (err.code === 'commander.helpDisplayed' ||
                err.code === 'commander.version' ||
                err.code === 'commander.help') {
                return EXIT_CODES.ok;
            }
            return EXIT_CODES.usage;
        }
        const cliError = err instanceof CliError
            ? err
            : deps.signal.aborted
                ? new CliError('interrupted', 'interrupted')
                : new CliError('error', `unexpected error: ${err instanceof Error ? err.message : String(err)}`, {
                    hint: 'run again with --debug and report it',
                    cause: err,
                });
        const hint = cliError.hint ? ` — ${cliError.hint}` : '';
        deps.stderr.write(`${paint('error:')} ${sanitize(redact(cliError.message), 400)}${hint}\n`);
        if (debug) {
            for (const line of causeChain(cliError.cause))
                deps.stderr.write(`debug: ${sanitize(redact(line), 400)}\n`);
        }
        return cliError.exitCode;
    }
}
