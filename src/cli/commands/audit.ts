/** `mcp-secure audit tail`: its flags, examples and validated options; the work is in ../audit.ts. */
import { checkTenantName } from '../../config/schema.js';
import {
  act,
  Command,
  type CommandContext,
  examples,
  Option,
  type ProfileFlags,
  parseDuration,
  profileFlags,
  type Runner,
  sshTransportOption,
  storageOption,
  tenantOption,
} from './shared.js';

export interface AuditOptions {
  tenant: string;
  actor: string | undefined;
  tool: string | undefined;
  outcome: 'allowed' | 'denied' | 'error' | undefined;
  sinceMs: number | undefined;
  follow: boolean | undefined;
  verify: boolean;
  quiet: boolean;
  pretty: boolean;
  acceptNewHostKey: boolean;
  sshTransport: 'auto' | 'openssh' | 'ssh2' | undefined;
  flags: ProfileFlags;
}

export function auditCommand(ctx: CommandContext, runF?: Runner<AuditOptions>) {
  const audit = new Command('audit')
    .description("the control plane's audit feed")
    .addHelpText(
      'after',
      examples([
        'mcp-secure audit tail --tenant acme',
        'mcp-secure audit tail -t acme --outcome denied --since 1h --no-follow',
      ]),
    );
  audit.addCommand(auditTailCommand(ctx, runF));
  return audit;
}

export function auditTailCommand(ctx: CommandContext, runF?: Runner<AuditOptions>) {
  return new Command('tail')
    .description('follow the audit feed of a tenant: live, resumed after drops, hash chain verified')
    .addOption(tenantOption('the tenant'))
    .option('--actor <actor>', 'only events of this actor')
    .option('--tool <tool>', 'only events of this tool')
    .addOption(
      new Option('--outcome <outcome>', 'only events with this outcome').choices([
        'allowed',
        'denied',
        'error',
      ] as const),
    )
    .option('--since <duration>', 'events of the last 90s, 10m, 2h, 1d')
    .option('--follow', 'keep following (the default on a terminal)')
    .option('--no-follow', 'print the backlog and exit')
    .option('--verify', 'exit non-zero (5) when the chain does not verify')
    .option('--quiet', 'no terminal bell on denials')
    .option('--pretty', 'aligned lines for people even when stdout is not a terminal')
    .option('--accept-new-host-key', 'trust an unknown SSH host key on first use and record it')
    .addOption(sshTransportOption())
    .addOption(storageOption())
    .addHelpText(
      'after',
      examples([
        'mcp-secure audit tail --tenant acme',
        'mcp-secure audit tail -t acme --outcome denied --since 1h --no-follow',
        'mcp-secure audit tail -t acme --json | jq -r .tool',
      ]),
    )
    .action((flags, cmd) => {
      const sinceMs = flags.since === undefined ? undefined : parseDuration(flags.since, '--since');
      const opts: AuditOptions = {
        tenant: checkTenantName(flags.tenant),
        actor: flags.actor,
        tool: flags.tool,
        outcome: flags.outcome,
        sinceMs,
        follow: typeof flags.follow === 'boolean' ? flags.follow : undefined,
        verify: flags.verify === true,
        quiet: flags.quiet === true,
        pretty: flags.pretty === true,
        acceptNewHostKey: flags.acceptNewHostKey === true,
        sshTransport: flags.sshTransport,
        flags: profileFlags(flags),
      };
      return act(ctx, cmd, opts, async () => runF ?? (await import('../audit.js')).run);
    });
}
