import { Argument as RawArgument, Command as RawCommand, Option as RawOption } from 'commander';
import { PROFILE_KEYS, STORAGES } from '../../config/schema.js';
import { CliError, sanitize } from '../../errors.js';
// @commander-js/extra-typings is types only (over the same commander classes, which its own index.js
// re-exports): options and arguments are typed from the flags as written, and nothing extra loads.
export const Command = RawCommand;
export const Option = RawOption;
export const Argument = RawArgument;
/** The frame's global options, as every command sees them (main.ts declares them). */
export function globalsOf(cmd) {
    const all = cmd.optsWithGlobals();
    return {
        profile: all.profile,
        json: all.json === true,
        debug: all.debug === true,
        color: all.color !== false,
    };
}
/**
 * The action of a command: validated options, then its run — `runF` in tests (gh's `runF`), else the
 * command's module, imported only now.
 */
export function act(ctx, cmd, opts, run) {
    return run().then(async (r) => ctx.setCode(await r(globalsOf(cmd), opts, ctx.deps)));
}
/** Two or three real examples at the end of a command's --help (clig.dev: "lead with examples"). */
export function examples(lines) {
    return `\nExamples:\n${lines.map((e) => `  $ ${e}`).join('\n')}\n`;
}
export function storageOption() {
    return new Option('--storage <where>', 'where the refresh token is kept').choices(STORAGES);
}
/** Which SSH client carries the tunnel (tunnel/transport.ts); undefined leaves it to ssh_transport. */
export function sshTransportOption() {
    return new Option('--ssh-transport <which>', 'the SSH client: auto (OpenSSH where `ssh` is installed), openssh, or ssh2 (in-process)').choices(['auto', 'openssh', 'ssh2']);
}
export function tenantOption(description = 'the tenant (lower-case letters, digits and dashes)') {
    return new Option('-t, --tenant <name>', description).makeOptionMandatory();
}
export function roleOption() {
    return new Option('--role <role>', 'the role to ask for; admin asks for a fresh, strong sign-in').choices([
        'member',
        'admin',
    ]);
}
export function issuerOption() {
    return new Option('--issuer <url>', 'OIDC issuer URL (overrides the profile)');
}
export function clientIdOption() {
    return new Option('--client-id <id>', 'OAuth client ID (overrides the profile)');
}
export function insecureHttpOption() {
    return new Option('--insecure-http', 'UNSAFE: allow a plain-http issuer, only on a loopback address (local test IdPs)');
}
/** Picks the profile keys a command's flags set. */
export function profileFlags(options) {
    const values = {};
    const names = {};
    if (options.issuer !== undefined) {
        values.issuer = options.issuer;
        names.issuer = '--issuer';
    }
    if (options.clientId !== undefined) {
        values.client_id = options.clientId;
        names.client_id = '--client-id';
    }
    if (options.storage !== undefined) {
        values.storage = options.storage;
        names.storage = '--storage';
    }
    if (options.insecureHttp === true) {
        values.insecure_http = true;
        names.insecure_http = '--insecure-http';
    }
    if (options.scope !== undefined) {
        values.scopes = options.scope.split(/[\s,]+/).filter(Boolean);
        names.scopes = '--scope';
    }
    // commander gives `--no-dpop` a default of true: only an explicit --no-dpop is a flag value.
    if (options.dpop === false) {
        values.dpop = false;
        names.dpop = '--no-dpop';
    }
    if (options.timeout !== undefined) {
        values.login_timeout = Number(options.timeout);
        names.login_timeout = '--timeout';
    }
    if (options.callbackPort !== undefined) {
        // Validated with the other flag values (config/load.ts), against callback_port's spec.
        values.callback_port = PROFILE_KEYS.callback_port.parse(options.callbackPort);
        names.callback_port = '--callback-port';
    }
    return { values, names };
}
export const NO_FLAGS = { values: {}, names: {} };
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/**
 * The one duration dialect of every flag that takes one (`--max-session`, `--idle-timeout`, `--since`):
 * a number of seconds, or a number with s, m, h or d ("90", "90s", "1.5h", "30m", "8h", "1d") → ms.
 */
export function parseDuration(text, flag, bounds = undefined) {
    const m = text.trim().match(/^(\d+(?:\.\d+)?)(s|m|h|d)?$/);
    if (!m)
        throw new CliError('usage', `invalid ${flag} "${sanitize(text, 20)}"`, {
            hint: 'use seconds or 90s, 30m, 8h, 1d',
        });
    const ms = Number(m[1]) * UNIT_MS[(m[2] ?? 's')];
    if (bounds && (ms < bounds.minMs || ms > bounds.maxMs))
        throw new CliError('usage', `${flag} must be between ${bounds.range}`, { hint: 'e.g. 8h' });
    return ms;
}
