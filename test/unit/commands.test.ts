/**
 * Each command's option parsing as a table (gh's `Test_NewCmdLogin`): argv in, the validated options
 * object (or the usage error) out, with the command's run replaced by one that records what it got. One
 * `test()` per case, so one failure hides no other.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { type AuditOptions, type AuditVerifyOptions, auditCommand } from '../../src/cli/commands/audit.js';
import { type CompletionOptions, completionCommand } from '../../src/cli/commands/completion.js';
import { type ConfigOptions, configCommand } from '../../src/cli/commands/config.js';
import { type ConnectOptions, connectCommand } from '../../src/cli/commands/connect.js';
import { doctorCommand } from '../../src/cli/commands/doctor.js';
import { type LoginOptions, loginCommand } from '../../src/cli/commands/login.js';
import { type LogoutOptions, logoutCommand } from '../../src/cli/commands/logout.js';
import { type McpOptions, mcpCommand } from '../../src/cli/commands/mcp.js';
import { type McpConfigOptions, mcpConfigCommand } from '../../src/cli/commands/mcp-config.js';
import type { CommandContext, Runner } from '../../src/cli/commands/shared.js';
import { type StatusOptions, statusCommand } from '../../src/cli/commands/status.js';
import { type TokenOptions, tokenCommand } from '../../src/cli/commands/token.js';
import { frame, mount } from '../../src/cli/main.js';
import type { GlobalOptions } from '../../src/cli/ui.js';
import { CliError } from '../../src/errors.js';
import { testDeps } from '../helpers/deps.js';

type Make<O> = (ctx: CommandContext, runF: Runner<O>) => unknown;

interface Case<O> {
  name: string;
  argv: string[];
  /** The options the run receives (compared whole). */
  wants?: O;
  /** Or: the error, as the user sees it (exit code and message). */
  wantsErr?: { code: 'usage'; message: RegExp };
  globals?: Partial<GlobalOptions>;
}

async function parse<O>(
  make: Make<O>,
  argv: string[],
): Promise<{ opts?: O; globals?: GlobalOptions; err?: unknown; code?: number }> {
  const deps = testDeps({ configDir: '/nonexistent-config-dir' });
  let got: { opts: O; globals: GlobalOptions } | undefined;
  let code: number | undefined;
  const ctx: CommandContext = { deps, setCode: (c) => (code = c) };
  const program = frame(deps);
  mount(
    program,
    make(ctx, async (globals, opts) => {
      got = { opts, globals };
      return 0;
    }) as Command,
  );
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    return { err };
  }
  return { ...got, ...(code === undefined ? {} : { code }) };
}

function table<O>(command: string, make: Make<O>, cases: Array<Case<O>>): void {
  for (const c of cases) {
    test(`${command}: ${c.name}`, async () => {
      const r = await parse(make, c.argv);
      if (c.wantsErr) {
        assert.ok(r.err, `expected an error, got ${JSON.stringify(r.opts)}`);
        const message = r.err instanceof Error ? r.err.message : String(r.err);
        // A usage error is a CliError of kind usage or commander's own (both exit 2 in main.ts).
        assert.ok(
          (r.err instanceof CliError && r.err.kind === 'usage') || r.err instanceof CommanderError,
          `not a usage error: ${message}`,
        );
        assert.match(message, c.wantsErr.message);
        return;
      }
      assert.equal(r.err, undefined, r.err instanceof Error ? r.err.message : undefined);
      assert.equal(r.code, 0);
      assert.deepEqual(r.opts, c.wants);
      if (c.globals)
        for (const [k, v] of Object.entries(c.globals))
          assert.deepEqual(r.globals?.[k as keyof GlobalOptions], v, k);
    });
  }
}

const noFlags = { values: {}, names: {} };

table<LoginOptions>('login', loginCommand, [
  { name: 'no flags: auto flow', argv: ['login'], wants: { flow: 'auto', flags: noFlags } },
  { name: '--device', argv: ['login', '--device'], wants: { flow: 'device', flags: noFlags } },
  { name: '--browser', argv: ['login', '--browser'], wants: { flow: 'browser', flags: noFlags } },
  {
    name: '--device with --browser',
    argv: ['login', '--device', '--browser'],
    wantsErr: { code: 'usage', message: /cannot be used together/ },
  },
  {
    name: 'profile flags',
    argv: [
      'login',
      '--issuer',
      'https://idp.example',
      '--client-id',
      'cli',
      '--storage',
      'memory',
      '--insecure-http',
      '--scope',
      'a, b c',
      '--no-dpop',
      '--timeout',
      '30',
    ],
    wants: {
      flow: 'auto',
      flags: {
        values: {
          issuer: 'https://idp.example',
          client_id: 'cli',
          storage: 'memory',
          insecure_http: true,
          scopes: ['a', 'b', 'c'],
          dpop: false,
          login_timeout: 30,
        },
        names: {
          issuer: '--issuer',
          client_id: '--client-id',
          storage: '--storage',
          insecure_http: '--insecure-http',
          scopes: '--scope',
          dpop: '--no-dpop',
          login_timeout: '--timeout',
        },
      },
    },
  },
  {
    name: 'unknown storage',
    argv: ['login', '--storage', 'file'],
    wantsErr: { code: 'usage', message: /Allowed choices are auto, keychain, memory/ },
  },
  {
    name: 'global options reach the command',
    argv: ['--profile', 'work', '--json', 'login'],
    wants: { flow: 'auto', flags: noFlags },
    globals: { profile: 'work', json: true, debug: false, color: true },
  },
]);

table<TokenOptions>('token', tokenCommand, [
  {
    name: 'tenant',
    argv: ['token', '--tenant', 'acme'],
    wants: { tenant: 'acme', role: 'member', flags: noFlags },
  },
  {
    name: '-t and admin role',
    argv: ['token', '-t', 'acme', '--role', 'admin'],
    wants: { tenant: 'acme', role: 'admin', flags: noFlags },
  },
  {
    name: 'no tenant',
    argv: ['token'],
    wantsErr: { code: 'usage', message: /--tenant <name>' not specified/ },
  },
  {
    name: 'bad tenant name',
    argv: ['token', '-t', 'ACME'],
    wantsErr: { code: 'usage', message: /invalid tenant name "ACME"/ },
  },
  {
    name: 'unknown role',
    argv: ['token', '-t', 'acme', '--role', 'root'],
    wantsErr: { code: 'usage', message: /Allowed choices are member, admin/ },
  },
  {
    name: '--no-dpop and storage',
    argv: ['token', '-t', 'acme', '--no-dpop', '--storage', 'keychain'],
    wants: {
      tenant: 'acme',
      role: 'member',
      flags: {
        values: { dpop: false, storage: 'keychain' },
        names: { dpop: '--no-dpop', storage: '--storage' },
      },
    },
  },
]);

const connectDefaults: ConnectOptions = {
  tenant: 'acme',
  role: 'member',
  port: undefined,
  bind: '127.0.0.1',
  allowNonLoopback: false,
  anyLocalUser: false,
  raw: false,
  acceptNewHostKey: false,
  maxSessionMs: undefined,
  idleTimeoutMs: undefined,
  auditPane: false,
  unsafeSkipTlsVerify: false,
  sshTransport: undefined,
  flags: noFlags,
};

table<ConnectOptions>('connect', connectCommand, [
  { name: 'tenant only: the defaults', argv: ['connect', '-t', 'acme'], wants: connectDefaults },
  {
    name: 'every boolean flag',
    argv: ['connect', '-t', 'acme', '--raw', '--accept-new-host-key', '--audit-pane', '--role', 'admin'],
    wants: { ...connectDefaults, raw: true, acceptNewHostKey: true, auditPane: true, role: 'admin' },
  },
  {
    name: '--unsafe-skip-tls-verify (a flag only: no config value turns verification off)',
    argv: ['connect', '-t', 'acme', '--unsafe-skip-tls-verify'],
    wants: { ...connectDefaults, unsafeSkipTlsVerify: true },
  },
  {
    name: '--port',
    argv: ['connect', '-t', 'acme', '--port', '7701'],
    wants: { ...connectDefaults, port: 7701 },
  },
  {
    name: '--ssh-transport ssh2',
    argv: ['connect', '-t', 'acme', '--ssh-transport', 'ssh2'],
    wants: { ...connectDefaults, sshTransport: 'ssh2' },
  },
  {
    name: '--ssh-transport not a transport',
    argv: ['connect', '-t', 'acme', '--ssh-transport', 'putty'],
    wantsErr: { code: 'usage', message: /--ssh-transport.*putty|Allowed choices/ },
  },
  {
    name: '--port not a number',
    argv: ['connect', '-t', 'acme', '--port', 'http'],
    wantsErr: { code: 'usage', message: /invalid --port "http"/ },
  },
  {
    name: '--port out of range',
    argv: ['connect', '-t', 'acme', '--port', '65536'],
    wantsErr: { code: 'usage', message: /invalid --port "65536"/ },
  },
  {
    name: '--bind a hostname',
    argv: ['connect', '-t', 'acme', '--bind', 'localhost'],
    wantsErr: { code: 'usage', message: /--bind must be an IP address/ },
  },
  {
    name: '--bind non-loopback without the unsafe flag',
    argv: ['connect', '-t', 'acme', '--bind', '0.0.0.0'],
    wantsErr: { code: 'usage', message: /refusing to listen on 0\.0\.0\.0/ },
  },
  {
    name: '--bind non-loopback with the unsafe flag',
    argv: ['connect', '-t', 'acme', '--bind', '0.0.0.0', '--unsafe-allow-non-loopback'],
    wants: { ...connectDefaults, bind: '0.0.0.0', allowNonLoopback: true },
  },
  {
    name: '--unsafe-any-local-user',
    argv: ['connect', '-t', 'acme', '--unsafe-any-local-user'],
    wants: { ...connectDefaults, anyLocalUser: true },
  },
  {
    name: '--bind ::1',
    argv: ['connect', '-t', 'acme', '--bind', '::1'],
    wants: { ...connectDefaults, bind: '::1' },
  },
  {
    name: 'durations',
    argv: ['connect', '-t', 'acme', '--max-session', '8h', '--idle-timeout', '90'],
    wants: { ...connectDefaults, maxSessionMs: 8 * 3_600_000, idleTimeoutMs: 90_000 },
  },
  {
    name: '--max-session in days (the one duration dialect)',
    argv: ['connect', '-t', 'acme', '--max-session', '1d'],
    wants: { ...connectDefaults, maxSessionMs: 86_400_000 },
  },
  {
    name: 'a duration too long',
    argv: ['connect', '-t', 'acme', '--max-session', '200h'],
    wantsErr: { code: 'usage', message: /--max-session must be between 1 s and 7 days/ },
  },
  {
    name: 'a duration that is not one',
    argv: ['connect', '-t', 'acme', '--idle-timeout', 'soon'],
    wantsErr: { code: 'usage', message: /invalid --idle-timeout "soon"/ },
  },
  {
    name: 'no tenant',
    argv: ['connect'],
    wantsErr: { code: 'usage', message: /--tenant <name>' not specified/ },
  },
  {
    name: 'bad tenant name',
    argv: ['connect', '-t', '-acme'],
    wantsErr: { code: 'usage', message: /invalid tenant name|argument missing/ },
  },
]);

const tailDefaults: AuditOptions = {
  tenant: 'acme',
  actor: undefined,
  tool: undefined,
  outcome: undefined,
  sinceMs: undefined,
  follow: undefined,
  verify: false,
  quiet: false,
  pretty: false,
  acceptNewHostKey: false,
  unsafeSkipTlsVerify: false,
  acceptNewLogKey: false,
  sshTransport: undefined,
  flags: noFlags,
};

table<AuditOptions>('audit tail', auditCommand, [
  {
    name: '--accept-new-log-key',
    argv: ['audit', 'tail', '-t', 'acme', '--accept-new-log-key'],
    wants: { ...tailDefaults, acceptNewLogKey: true },
  },
  { name: 'tenant only', argv: ['audit', 'tail', '-t', 'acme'], wants: tailDefaults },
  {
    name: 'filters',
    argv: ['audit', 'tail', '-t', 'acme', '--actor', 'alice', '--tool', 'query', '--outcome', 'denied'],
    wants: { ...tailDefaults, actor: 'alice', tool: 'query', outcome: 'denied' },
  },
  {
    name: 'unknown outcome',
    argv: ['audit', 'tail', '-t', 'acme', '--outcome', 'maybe'],
    wantsErr: { code: 'usage', message: /Allowed choices are allowed, denied, error/ },
  },
  {
    name: '--since 1d',
    argv: ['audit', 'tail', '-t', 'acme', '--since', '1d'],
    wants: { ...tailDefaults, sinceMs: 86_400_000 },
  },
  {
    name: '--since in seconds (the one duration dialect)',
    argv: ['audit', 'tail', '-t', 'acme', '--since', '90'],
    wants: { ...tailDefaults, sinceMs: 90_000 },
  },
  {
    name: '--since 1.5h',
    argv: ['audit', 'tail', '-t', 'acme', '--since', '1.5h'],
    wants: { ...tailDefaults, sinceMs: 5_400_000 },
  },
  {
    name: '--since that is not a duration',
    argv: ['audit', 'tail', '-t', 'acme', '--since', 'yesterday'],
    wantsErr: { code: 'usage', message: /invalid --since "yesterday"/ },
  },
  {
    name: '--follow',
    argv: ['audit', 'tail', '-t', 'acme', '--follow'],
    wants: { ...tailDefaults, follow: true },
  },
  {
    name: '--no-follow',
    argv: ['audit', 'tail', '-t', 'acme', '--no-follow'],
    wants: { ...tailDefaults, follow: false },
  },
  {
    name: 'switches',
    argv: ['audit', 'tail', '-t', 'acme', '--verify', '--quiet', '--pretty', '--accept-new-host-key'],
    wants: { ...tailDefaults, verify: true, quiet: true, pretty: true, acceptNewHostKey: true },
  },
  {
    name: 'no tenant',
    argv: ['audit', 'tail'],
    wantsErr: { code: 'usage', message: /--tenant <name>' not specified/ },
  },
]);

const verifyDefaults: AuditVerifyOptions = {
  tenant: 'acme',
  acceptNewHostKey: false,
  acceptNewLogKey: false,
  sshTransport: undefined,
  flags: noFlags,
};

table<AuditVerifyOptions>('audit verify', (ctx, runF) => auditCommand(ctx, undefined, runF), [
  { name: 'tenant only', argv: ['audit', 'verify', '-t', 'acme'], wants: verifyDefaults },
  {
    name: 'first contact flags',
    argv: ['audit', 'verify', '--tenant', 'acme', '--accept-new-log-key', '--accept-new-host-key'],
    wants: { ...verifyDefaults, acceptNewLogKey: true, acceptNewHostKey: true },
  },
  {
    name: 'no tenant',
    argv: ['audit', 'verify'],
    wantsErr: { code: 'usage', message: /--tenant <name>' not specified/ },
  },
  {
    name: 'a bad tenant name',
    argv: ['audit', 'verify', '-t', 'Not A Tenant'],
    wantsErr: { code: 'usage', message: /invalid tenant name/ },
  },
]);

table<McpOptions>('mcp', mcpCommand, [
  {
    name: 'tenant only',
    argv: ['mcp', '--tenant', 'acme'],
    wants: {
      tenant: 'acme',
      role: 'member',
      acceptNewHostKey: false,
      sshTransport: undefined,
      ownTunnel: false,
      flags: noFlags,
    },
  },
  {
    name: 'every flag',
    argv: [
      'mcp',
      '-t',
      'acme',
      '--role',
      'admin',
      '--accept-new-host-key',
      '--ssh-transport',
      'ssh2',
      '--own-tunnel',
    ],
    wants: {
      tenant: 'acme',
      role: 'admin',
      acceptNewHostKey: true,
      sshTransport: 'ssh2',
      ownTunnel: true,
      flags: noFlags,
    },
  },
  {
    name: 'admin: its own tunnel (a step-up is never shared)',
    argv: ['mcp', '-t', 'acme', '--role', 'admin'],
    wants: {
      tenant: 'acme',
      role: 'admin',
      acceptNewHostKey: false,
      sshTransport: undefined,
      ownTunnel: true,
      flags: noFlags,
    },
  },
  {
    name: 'no tenant',
    argv: ['mcp'],
    wantsErr: { code: 'usage', message: /--tenant <name>' not specified/ },
  },
]);

const mcpDefaults: McpConfigOptions = {
  client: 'claude-code',
  transport: 'stdio',
  tenant: 'acme',
  name: undefined,
  port: undefined,
  scope: undefined,
  write: false,
  dryRun: false,
};

table<McpConfigOptions>('mcp-config', mcpConfigCommand, [
  {
    name: 'client and tenant',
    argv: ['mcp-config', '--client', 'claude-code', '-t', 'acme'],
    wants: mcpDefaults,
  },
  {
    name: 'stdio without a tenant',
    argv: ['mcp-config', '--client', 'claude-code'],
    wantsErr: { code: 'usage', message: /which tenant\?/ },
  },
  {
    name: 'stdio with a port',
    argv: ['mcp-config', '--client', 'cursor', '-t', 'acme', '--port', '7701'],
    wantsErr: { code: 'usage', message: /--port is for --transport http/ },
  },
  {
    name: 'every flag',
    argv: [
      'mcp-config',
      '--client',
      'vscode',
      '--transport',
      'http',
      '--tenant',
      'globex',
      '--name',
      'corp',
      '--port',
      '7701',
      '--scope',
      'user',
      '--write',
      '--dry-run',
    ],
    wants: {
      client: 'vscode',
      transport: 'http',
      tenant: 'globex',
      name: 'corp',
      port: 7701,
      scope: 'user',
      write: true,
      dryRun: true,
    },
  },
  {
    name: 'no client',
    argv: ['mcp-config'],
    wantsErr: { code: 'usage', message: /--client <client>' not specified/ },
  },
  {
    name: 'unknown client',
    argv: ['mcp-config', '--client', 'emacs'],
    wantsErr: { code: 'usage', message: /Allowed choices are claude-desktop, claude-code, cursor, vscode/ },
  },
  {
    name: 'bad name',
    argv: ['mcp-config', '--client', 'cursor', '-t', 'acme', '--name', 'a b'],
    wantsErr: { code: 'usage', message: /invalid --name "a b"/ },
  },
  {
    name: 'bad port',
    argv: ['mcp-config', '--client', 'cursor', '--transport', 'http', '--port', '0'],
    wantsErr: { code: 'usage', message: /invalid --port/ },
  },
]);

table<LogoutOptions>('logout', logoutCommand, [
  { name: 'no flags', argv: ['logout'], wants: { flags: noFlags } },
  {
    name: '--storage and --issuer',
    argv: ['logout', '--storage', 'memory', '--issuer', 'https://idp.example'],
    wants: {
      flags: {
        values: { storage: 'memory', issuer: 'https://idp.example' },
        names: { storage: '--storage', issuer: '--issuer' },
      },
    },
  },
]);

table<StatusOptions>('status', statusCommand, [
  { name: 'no flags', argv: ['status'], wants: { flags: noFlags } },
  {
    name: '--storage keychain',
    argv: ['status', '--storage', 'keychain'],
    wants: { flags: { values: { storage: 'keychain' }, names: { storage: '--storage' } } },
  },
  {
    name: 'an unknown flag',
    argv: ['status', '--tenant', 'acme'],
    wantsErr: { code: 'usage', message: /unknown option '--tenant'/ },
  },
]);

table<ConfigOptions>('config', configCommand, [
  { name: 'bare: show', argv: ['config'], wants: { action: 'show' } },
  { name: 'show', argv: ['config', 'show'], wants: { action: 'show' } },
  {
    name: 'set',
    argv: ['config', 'set', 'issuer', 'https://idp.example'],
    wants: { action: 'set', key: 'issuer', value: 'https://idp.example' },
  },
  {
    name: 'set without a value',
    argv: ['config', 'set', 'issuer'],
    wantsErr: { code: 'usage', message: /missing required argument 'value'/ },
  },
  { name: 'unset', argv: ['config', 'unset', 'scopes'], wants: { action: 'unset', key: 'scopes' } },
  { name: 'use', argv: ['config', 'use', 'work'], wants: { action: 'use', profile: 'work' } },
  { name: 'list', argv: ['config', 'list'], wants: { action: 'list' } },
]);

table<Record<string, never>>('doctor', doctorCommand, [
  { name: 'no flags', argv: ['doctor'], wants: {} },
  {
    name: 'an unknown flag',
    argv: ['doctor', '--fix'],
    wantsErr: { code: 'usage', message: /unknown option '--fix'/ },
  },
]);

table<CompletionOptions>('completion', completionCommand, [
  { name: 'bash', argv: ['completion', 'bash'], wants: { shell: 'bash' } },
  { name: 'fish', argv: ['completion', 'fish'], wants: { shell: 'fish' } },
  {
    name: 'an unknown shell',
    argv: ['completion', 'tcsh'],
    wantsErr: { code: 'usage', message: /Allowed choices are bash, zsh, fish/ },
  },
  {
    name: 'no shell',
    argv: ['completion'],
    wantsErr: { code: 'usage', message: /missing required argument 'shell'/ },
  },
]);
