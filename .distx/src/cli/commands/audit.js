/** `mcp-secure audit tail`: its flags, examples and validated options; the work is in ../audit.ts. */
import { checkTenantName } from '../../config/schema.js';
import { act, Command, examples, Option, parseDuration, profileFlags, sshTransportOption, storageOption, tenantOption, } from './shared.js';
export function auditCommand(ctx, runF, runVerifyF) {
    const audit = new Command('audit')
        .description("the control plane's audit feed")
        .addHelpText('after', examples([
        'mcp-secure audit tail --tenant acme',
        'mcp-secure audit tail -t acme --outcome denied --since 1h --no-follow',
        'mcp-secure audit verify -t acme',
    ]));
    audit.addCommand(auditTailCommand(ctx, runF));
    audit.addCommand(auditVerifyCommand(ctx, runVerifyF));
    return audit;
}
const ACCEPT_NEW_LOG_KEY = "pin the audit log's checkpoint key on first use (like a new host key)";
export function auditVerifyCommand(ctx, runF) {
    return new Command('verify')
        .description("check the log's signed checkpoint is consistent with the one remembered from the last run (no streaming)")
        .addOption(tenantOption('the tenant'))
        .option('--accept-new-host-key', 'trust an unknown SSH host key on first use and record it')
        .option('--accept-new-log-key', ACCEPT_NEW_LOG_KEY)
        .addOption(sshTransportOption())
        .addOption(storageOption())
        .addHelpText('after', examples([
        'mcp-secure audit verify --tenant acme',
        'mcp-secure audit verify -t acme --profile work --json',
    ]))
        .action((flags, cmd) => {
        const opts = {
            tenant: checkTenantName(flags.tenant),
            acceptNewHostKey: flags.acceptNewHostKey === true,
            acceptNewLogKey: flags.acceptNewLogKey === true,
            sshTransport: flags.sshTransport,
            flags: profileFlags(flags),
        };
        return act(ctx, cmd, opts, async () => runF ?? (await import('../audit-verify.js')).run);
    });
}
export function auditTailCommand(ctx, runF) {
    return new Command('tail')
        .description('follow the audit feed of a tenant: live, resumed after drops, hash chain verified')
        .addOption(tenantOption('the tenant'))
        .option('--actor <actor>', 'only events of this actor')
        .option('--tool <tool>', 'only events of this tool')
        .addOption(new Option('--outcome <outcome>', 'only events with this outcome').choices([
        'allowed',
        'denied',
        'error',
    ]))
        .option('--since <duration>', 'events of the last 90s, 10m, 2h, 1d')
        .option('--follow', 'keep following (the default on a terminal)')
        .option('--no-follow', 'print the backlog and exit')
        .option('--verify', 'exit non-zero (5) when the chain or the signed log does not verify')
        .option('--quiet', 'no terminal bell on denials')
        .option('--pretty', 'aligned lines for people even when stdout is not a terminal')
        .option('--accept-new-host-key', 'trust an unknown SSH host key on first use and record it')
        .option('--unsafe-skip-tls-verify', "UNSAFE: do not verify the https:// MCP server's certificate")
        .option('--accept-new-log-key', ACCEPT_NEW_LOG_KEY)
        .addOption(sshTransportOption())
        .addOption(storageOption())
        .addHelpText('after', examples([
        'mcp-secure audit tail --tenant acme',
        'mcp-secure audit tail -t acme --outcome denied --since 1h --no-follow',
        'mcp-secure audit tail -t acme --json | jq -r .tool',
    ]))
        .action((flags, cmd) => {
        const sinceMs = flags.since === undefined ? undefined : parseDuration(flags.since, '--since');
        const opts = {
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
            unsafeSkipTlsVerify: flags.unsafeSkipTlsVerify === true,
            acceptNewLogKey: flags.acceptNewLogKey === true,
            sshTransport: flags.sshTransport,
            flags: profileFlags(flags),
        };
        return act(ctx, cmd, opts, async () => runF ?? (await import('../audit.js')).run);
    });
}
