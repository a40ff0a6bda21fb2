/**
 * The command-line frame: commander, with every command loaded lazily (a command imports only what it
 * uses, so `--help` costs little more than Node's own start-up), and the one place where errors become
 * text and exit codes.
 */
import { Argument, Command, CommanderError, Option } from 'commander';
import { CliError, EXIT_CODES, redact, sanitize } from '../errors.js';
import type { Deps } from '../io.js';
import type { GlobalOptions } from './ui.js';

type Run = (
  globals: GlobalOptions,
  options: Record<string, unknown>,
  args: string[],
  deps: Deps,
) => Promise<number>;

const VERSION = '0.1.0';

function globalsOf(cmd: Command): GlobalOptions {
  const all = cmd.optsWithGlobals() as Record<string, unknown>;
  return {
    profile: typeof all['profile'] === 'string' ? all['profile'] : undefined,
    json: all['json'] === true,
    debug: all['debug'] === true,
    color: all['color'] !== false,
  };
}

function storageOption(): Option {
  return new Option('--storage <where>', 'where the refresh token is kept').choices([
    'auto',
    'keychain',
    'memory',
  ]);
}

function idpOptions(cmd: Command): Command {
  return cmd
    .option('--issuer <url>', 'OIDC issuer URL (overrides the profile)')
    .option('--client-id <id>', 'OAuth client ID (overrides the profile)')
    .option(
      '--insecure-http',
      'UNSAFE: allow a plain-http issuer, only on a loopback address (local test IdPs)',
    );
}

export function buildProgram(deps: Deps, setCode: (code: number) => void): Command {
  const program = new Command('mcp-secure');
  const lazy =
    (load: () => Promise<{ run: Run }>) =>
    async (...received: unknown[]) => {
      const cmd = received[received.length - 1] as Command;
      const options = received[received.length - 2] as Record<string, unknown>;
      const args = received.slice(0, -2).filter((a): a is string => typeof a === 'string');
      const { run } = await load();
      setCode(await run(globalsOf(cmd), options, args, deps));
    };

  program
    .description('Safe local access to a control-plane MCP server inside a private cluster.')
    .version(VERSION, '-V, --version')
    .option(
      '-p, --profile <name>',
      'configuration profile to use (default: the configured default, or "default")',
    )
    .option('--json', 'machine-readable output on stdout')
    .option('--debug', 'diagnostic output on stderr (tokens are always redacted)')
    .option('--no-color', 'no colours (NO_COLOR is honoured too)')
    .showHelpAfterError('(run `mcp-secure --help` for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => deps.stdout.write(s),
      writeErr: (s) => deps.stderr.write(s),
    });

  idpOptions(
    program
      .command('login')
      .description('sign in with your identity provider (browser + PKCE, or the device flow)')
      .option('--device', 'use the device flow: sign in on any device with a code')
      .option('--browser', 'open a browser on this machine (authorization code + PKCE)')
      .addOption(storageOption())
      .option('--scope <scopes>', 'extra scopes besides "openid offline_access" (space or comma separated)')
      .option('--timeout <seconds>', 'how long to wait for the sign-in')
      .option(
        '--callback-port <ports>',
        'browser login: listen on this fixed port (or the first free of several) for the exact redirect URI your IdP has registered',
      )
      .option('--no-dpop', 'do not bind the tokens to a DPoP key even where the IdP offers it'),
  ).action(lazy(() => import('./login.js')));

  program
    .command('token')
    .description('print a short-lived tenant token (RFC 8693) for MCP clients that bring their own')
    .requiredOption('-t, --tenant <name>', 'the tenant (lower-case letters, digits and dashes)')
    .addOption(
      new Option('--role <role>', 'the role to ask for; admin asks for a fresh, strong sign-in').choices([
        'member',
        'admin',
      ]),
    )
    .option('--no-dpop', 'do not use DPoP for this request')
    .addOption(storageOption())
    .action(lazy(() => import('./token.js')));

  program
    .command('connect')
    .description('tenant token + SSH tunnel: the in-cluster MCP endpoint on 127.0.0.1:7700 for this tenant')
    .requiredOption('-t, --tenant <name>', 'the tenant (lower-case letters, digits and dashes)')
    .addOption(
      new Option('--role <role>', 'the role to ask for; admin asks for a fresh, strong sign-in').choices([
        'member',
        'admin',
      ]),
    )
    .option('--port <port>', "local port (default: the profile's local_port, 7700)")
    .option('--bind <address>', 'local address to listen on (loopback only unless the unsafe flag is given)')
    .option(
      '--unsafe-allow-non-loopback',
      'UNSAFE: allow --bind on a non-loopback address (anyone reaching it uses your session)',
    )
    .option('--raw', 'a plain TCP forward like `ssh -L` (the client brings its own token)')
    .option(
      '--accept-new-host-key',
      'trust an unknown SSH host key on first use and record it (like StrictHostKeyChecking=accept-new)',
    )
    .option('--max-session <duration>', 'end the session after this long (e.g. 8h)')
    .option('--idle-timeout <duration>', 'end the session after this long without traffic (e.g. 30m)')
    .option('--audit-pane', 'show the audit feed of this tenant in a second tmux pane')
    .option('--no-dpop', 'do not use DPoP for this session')
    .addOption(storageOption())
    .action(lazy(() => import('./connect.js')));

  const audit = program.command('audit').description("the control plane's audit feed");
  audit
    .command('tail')
    .description('follow the audit feed of a tenant: live, resumed after drops, hash chain verified')
    .requiredOption('-t, --tenant <name>', 'the tenant')
    .option('--actor <actor>', 'only events of this actor')
    .option('--tool <tool>', 'only events of this tool')
    .addOption(
      new Option('--outcome <outcome>', 'only events with this outcome').choices([
        'allowed',
        'denied',
        'error',
      ]),
    )
    .option('--since <duration>', 'events of the last 90s, 10m, 2h, 1d')
    .option('--follow', 'keep following (the default on a terminal)')
    .option('--no-follow', 'print the backlog and exit')
    .option('--verify', 'exit non-zero (5) when the chain does not verify')
    .option('--quiet', 'no terminal bell on denials')
    .option('--pretty', 'aligned lines for people even when stdout is not a terminal')
    .option('--accept-new-host-key', 'trust an unknown SSH host key on first use and record it')
    .addOption(storageOption())
    .action(lazy(() => import('./audit.js')));

  program
    .command('mcp-config')
    .description("print (or --write) an MCP client's config for the local tunnel; it holds no secret")
    .addOption(
      new Option('--client <client>', 'the MCP client')
        .choices(['claude-desktop', 'claude-code', 'cursor', 'vscode'])
        .makeOptionMandatory(),
    )
    .option('--name <name>', "the server name in the client's config", 'mcp-secure')
    .option('--port <port>', "the local port (default: the profile's local_port, 7700)")
    .addOption(
      new Option(
        '--scope <scope>',
        'project (this directory) or user (every project); default per client',
      ).choices(['project', 'user']),
    )
    .option('--write', "merge into the client's config file (a backup first), keeping everything else there")
    .option('--dry-run', 'print the whole merged file --write would write, and write nothing')
    .action(lazy(() => import('./mcp-config.js')));

  idpOptions(
    program
      .command('logout')
      .description('revoke the refresh token at the IdP (RFC 7009) and delete it from the store')
      .addOption(storageOption()),
  ).action(lazy(() => import('./logout.js')));

  program
    .command('status')
    .description('who is signed in, where the token is kept, and when it expires (never a token value)')
    .addOption(storageOption())
    .action(lazy(() => import('./status.js')));

  const config = program
    .command('config')
    .description('show the effective profile and where each value comes from; change profiles')
    .action(lazy(() => import('./config.js').then((m) => ({ run: m.runShow }))));
  config
    .command('show')
    .description('show the effective profile (the default)')
    .action(lazy(() => import('./config.js').then((m) => ({ run: m.runShow }))));
  config
    .command('set')
    .description('set a value in your user config (creates the profile)')
    .argument('<key>', 'issuer, client_id, scopes, storage, insecure_http, login_timeout or login_flow')
    .argument('<value>')
    .action(lazy(() => import('./config.js').then((m) => ({ run: m.runSet }))));
  config
    .command('unset')
    .description('remove a value from your user config')
    .argument('<key>')
    .action(lazy(() => import('./config.js').then((m) => ({ run: m.runUnset }))));
  config
    .command('use')
    .description('make a profile the default')
    .argument('<profile>')
    .action(lazy(() => import('./config.js').then((m) => ({ run: m.runUse }))));
  config
    .command('list')
    .description('list the profiles')
    .action(lazy(() => import('./config.js').then((m) => ({ run: m.runList }))));
  program
    .command('doctor')
    .description(
      'check config, IdP, keychain, ssh-agent, host keys, port, tmux and clock; each ✗ with its fix',
    )
    .action(lazy(() => import('./doctor.js')));

  program
    .command('completion')
    .description('print a shell completion script (commands, flags, profiles, tenants)')
    .addArgument(new Argument('<shell>', 'your shell').choices(['bash', 'zsh', 'fish']))
    .action(lazy(() => import('./completion.js')));

  addExamples(program);
  return program;
}

/** Two or three real examples at the end of every command's --help (clig.dev: "lead with examples"). */
const EXAMPLES: Readonly<Record<string, string[]>> = {
  'mcp-secure': [
    'mcp-secure login                       # sign in (browser, or a code on a headless machine)',
    'mcp-secure connect --tenant acme       # the MCP endpoint of tenant acme on 127.0.0.1:7700',
    'mcp-secure doctor                      # what is missing, and how to fix it',
  ],
  login: [
    'mcp-secure login',
    'mcp-secure login --device --profile work     # a code to type on your phone or laptop',
    'mcp-secure login --storage memory            # keep the login in this process only',
  ],
  token: [
    'mcp-secure token --tenant acme --json',
    'mcp-secure token --tenant acme --role admin   # asks for a fresh, strong sign-in first',
  ],
  connect: [
    'mcp-secure connect --tenant acme',
    'mcp-secure connect -t acme --audit-pane --idle-timeout 30m   # inside tmux',
    'mcp-secure connect -t globex --port 7701 --json              # NDJSON events on stdout',
  ],
  tail: [
    'mcp-secure audit tail --tenant acme',
    'mcp-secure audit tail -t acme --outcome denied --since 1h --no-follow',
    'mcp-secure audit tail -t acme --json | jq -r .tool',
  ],
  audit: [
    'mcp-secure audit tail --tenant acme',
    'mcp-secure audit tail -t acme --outcome denied --since 1h --no-follow',
  ],
  'mcp-config': [
    'mcp-secure mcp-config --client claude-code --write     # ./.mcp.json',
    'mcp-secure mcp-config --client claude-desktop --write  # backup first, other servers kept',
    'mcp-secure mcp-config --client vscode --port 7701',
  ],
  logout: ['mcp-secure logout', 'mcp-secure logout --profile work'],
  status: ['mcp-secure status', 'mcp-secure status --json | jq .access_expires_at'],
  config: [
    'mcp-secure config',
    'mcp-secure config set issuer https://login.example.com --profile work',
    'mcp-secure config use work',
  ],
  show: ['mcp-secure config show', 'mcp-secure config show --profile work --json'],
  set: [
    'mcp-secure config set client_id 0oa1b2c3d4 --profile work',
    'mcp-secure config set bastion ops@bastion.example.com',
  ],
  unset: ['mcp-secure config unset scopes --profile work', 'mcp-secure config unset jump'],
  use: ['mcp-secure config use work', 'mcp-secure config use default'],
  list: ['mcp-secure config list', 'mcp-secure config list --json'],
  doctor: [
    'mcp-secure doctor',
    'mcp-secure doctor --profile work --json | jq \'.checks[] | select(.status == "fail")\'',
  ],
  completion: [
    'mcp-secure completion bash > ~/.local/share/bash-completion/completions/mcp-secure',
    'mcp-secure completion zsh > ~/.zfunc/_mcp-secure   # with fpath+=(~/.zfunc) before compinit in ~/.zshrc',
    'mcp-secure completion fish > ~/.config/fish/completions/mcp-secure.fish',
  ],
};

function addExamples(cmd: Command): void {
  const examples = EXAMPLES[cmd.name()];
  if (examples) cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
  for (const sub of cmd.commands) addExamples(sub);
}

function causeChain(err: unknown): string[] {
  const lines: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 6 && e; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      lines.push(`${e.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${e.message}`);
      e = e.cause;
    } else {
      break;
    }
  }
  return lines;
}

/** Runs the CLI; never calls process.exit. Resolves the exit code. */
export async function main(argv: string[], deps: Deps): Promise<number> {
  let code = 0;
  const program = buildProgram(deps, (c) => {
    code = c;
  });
  const debug = argv.includes('--debug');
  const noColor = argv.includes('--no-color') || Boolean(deps.env['NO_COLOR']) || !deps.stderrIsTTY;
  const paint = (s: string) => (noColor ? s : `\u001b[31m${s}\u001b[39m`);
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
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are successes; everything else commander reports is a usage error.
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      ) {
        return EXIT_CODES.ok;
      }
      return EXIT_CODES.usage;
    }
    const cliError =
      err instanceof CliError
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
