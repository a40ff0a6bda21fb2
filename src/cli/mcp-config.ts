/**
 * `mcp-secure mcp-config --client X`: the MCP client configuration that points at the local tunnel. It
 * holds no secret: the proxy adds the tenant token. `--write` merges it into the client's own file,
 * keeping everything that was there.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/load.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import { CLIENTS, type McpClient, type McpConfigOptions, SCOPES, type Scope } from './commands/mcp-config.js';
import { loadProfile } from './context.js';
import { type GlobalOptions, Ui } from './ui.js';

export { CLIENTS, type McpClient, SCOPES, type Scope };

const CLIENT_NAMES: Readonly<Record<McpClient, string>> = {
  'claude-desktop': 'Claude Desktop',
  'claude-code': 'Claude Code',
  cursor: 'Cursor',
  vscode: 'VS Code',
};

interface Target {
  /** The file --write merges into. */
  file: string;
  /** Where in that file the servers live. */
  key: 'mcpServers' | 'servers';
  entry: Record<string, unknown>;
  scope: Scope;
}

type PathDeps = Pick<Deps, 'homedir' | 'cwd' | 'platform' | 'env'>;

/** The per-user application-data directory: ~/Library/Application Support, %APPDATA%, $XDG_CONFIG_HOME. */
function appData(deps: PathDeps, app: string): string {
  if (deps.platform === 'darwin') return join(deps.homedir, 'Library', 'Application Support', app);
  if (deps.platform === 'win32')
    return join(deps.env['APPDATA'] ?? join(deps.homedir, 'AppData', 'Roaming'), app);
  return join(deps.env['XDG_CONFIG_HOME'] || join(deps.homedir, '.config'), app);
}

/** Where each client keeps its servers (checked against each client's documentation, 2025-2026). */
export const DEFAULT_SCOPE: Readonly<Record<McpClient, Scope>> = {
  'claude-desktop': 'user',
  'claude-code': 'project',
  cursor: 'user',
  vscode: 'project',
};

export function clientTarget(
  client: McpClient,
  url: string,
  deps: PathDeps,
  scope = DEFAULT_SCOPE[client],
): Target {
  switch (client) {
    case 'claude-desktop': {
      if (scope !== 'user') {
        throw new CliError('usage', 'Claude Desktop has only a per-user config', { hint: 'drop --scope' });
      }
      // Claude Desktop's config file starts local (stdio) servers only; mcp-remote bridges it to HTTP.
      // macOS ~/Library/Application Support/Claude, Windows %APPDATA%\Claude, Linux ~/.config/Claude.
      return {
        file: join(appData(deps, 'Claude'), 'claude_desktop_config.json'),
        key: 'mcpServers',
        entry: { command: 'npx', args: ['-y', 'mcp-remote', url, '--allow-http'] },
        scope,
      };
    }
    case 'claude-code':
      // project: .mcp.json at the project root (shared through git); user: ~/.claude.json's top-level
      // mcpServers (every project). Remote servers are `"type": "http"`.
      return {
        file: scope === 'user' ? join(deps.homedir, '.claude.json') : join(deps.cwd, '.mcp.json'),
        key: 'mcpServers',
        entry: { type: 'http', url },
        scope,
      };
    case 'cursor':
      // user: ~/.cursor/mcp.json; project: .cursor/mcp.json. A `url` entry is a remote server.
      return {
        file:
          scope === 'user'
            ? join(deps.homedir, '.cursor', 'mcp.json')
            : join(deps.cwd, '.cursor', 'mcp.json'),
        key: 'mcpServers',
        entry: { url },
        scope,
      };
    case 'vscode':
      // project: .vscode/mcp.json; user: mcp.json in the user profile (Code/User). Top-level `servers`.
      return {
        file:
          scope === 'user'
            ? join(appData(deps, 'Code'), 'User', 'mcp.json')
            : join(deps.cwd, '.vscode', 'mcp.json'),
        key: 'servers',
        entry: { type: 'http', url },
        scope,
      };
  }
}

/** `file.bak-20260123T101500Z`: one backup per write, none overwritten. */
export function backupName(file: string, nowMs: number): string {
  return `${file}.bak-${new Date(nowMs)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

export async function runMcpConfig(globals: GlobalOptions, opts: McpConfigOptions, deps: Deps) {
  const ui = await Ui.create(deps, globals);
  const { client, name } = opts;
  const eff = await loadProfile(deps, globals);
  const port = opts.port ?? eff.profile.local_port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CliError('usage', 'invalid --port', { hint: 'use a port number, e.g. 7700' });
  }
  const path = eff.profile.mcp_url ? new URL(eff.profile.mcp_url).pathname : '/mcp';
  const url = `http://127.0.0.1:${port}${path}`;
  const target = clientTarget(client, url, deps, opts.scope);
  const snippet = { [target.key]: { [name]: target.entry } };

  if (!opts.write && !opts.dryRun) {
    ui.out(JSON.stringify(snippet, null, 2));
    ui.info(
      ui.c.dim(
        `Merge this into ${target.file} (or run again with --write). Start the tunnel with \`mcp-secure connect --tenant NAME\`.`,
      ),
    );
    return 0;
  }
  let existing: Record<string, unknown> = {};
  let original: string | undefined;
  try {
    original = await readFile(target.file, 'utf8');
    const parsed: unknown = JSON.parse(original);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new SyntaxError('not an object');
    existing = parsed as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CliError('error', `${target.file} is not a JSON object; not touching it`, {
        hint: 'fix it by hand, or print the config without --write and merge it yourself',
      });
    }
  }
  const current = existing[target.key];
  if (current !== undefined && (typeof current !== 'object' || current === null || Array.isArray(current))) {
    throw new CliError('error', `"${target.key}" in ${target.file} is not an object; not touching it`, {
      hint: 'fix it by hand, or print the config without --write and merge it yourself',
    });
  }
  const servers = (current as Record<string, unknown> | undefined) ?? {};
  const replaced = name in servers;
  if (replaced && JSON.stringify(servers[name]) === JSON.stringify(target.entry)) {
    ui.success(`"${name}" in ${target.file} already points at ${url}; nothing to change.`);
    return 0;
  }
  existing[target.key] = { ...servers, [name]: target.entry };
  const merged = `${JSON.stringify(existing, null, 2)}\n`;
  if (opts.dryRun) {
    ui.out(merged.trimEnd());
    ui.info(ui.c.dim(`--dry-run: this is what --write would put in ${target.file}; nothing was written.`));
    return 0;
  }
  // The user's file is copied aside first (0600: ~/.claude.json and friends may hold credentials of
  // their own), then replaced atomically: a crash leaves the old file or the new one, never half of one.
  let backup = '';
  if (original !== undefined) {
    // 'wx': an existing backup is never overwritten; two writes within a second get a suffix.
    for (let i = 0; i < 10 && !backup; i++) {
      const candidate = `${backupName(target.file, deps.now())}${i ? `.${i}` : ''}`;
      try {
        await writeFile(candidate, original, { mode: 0o600, flag: 'wx' });
        backup = candidate;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    if (!backup) {
      throw new CliError('error', `could not write a backup of ${target.file}; not touching it`, {
        hint: 'remove old .bak- files next to it and try again',
      });
    }
  }
  await writeFileAtomic(target.file, merged);
  const kept = Object.keys(servers).filter((k) => k !== name).length;
  ui.success(
    `${replaced ? 'Updated' : 'Added'} "${name}" in ${target.file} (${url}); ${kept} other server${kept === 1 ? '' : 's'} and every other setting kept.`,
  );
  if (backup) ui.info(`  backup of the previous file: ${backup}`);
  ui.info(
    ui.c.dim(
      `Restart ${CLIENT_NAMES[client]} to pick it up; start the tunnel with \`mcp-secure connect --tenant NAME\`.`,
    ),
  );
  return 0;
}
