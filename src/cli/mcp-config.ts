/**
 * `mcp-secure mcp-config --client X`: the MCP client configuration that points at the local tunnel. It
 * holds no secret: the proxy adds the tenant token. `--write` merges it into the client's own file,
 * keeping everything that was there.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/load.js';
import { CliError, sanitize } from '../errors.js';
import type { Deps } from '../io.js';
import { loadProfile } from './context.js';
import { type GlobalOptions, Ui } from './ui.js';

export const CLIENTS = ['claude-desktop', 'claude-code', 'cursor', 'vscode'] as const;
export type McpClient = (typeof CLIENTS)[number];

interface Target {
  /** The file --write merges into. */
  file: string;
  /** Where in that file the servers live. */
  key: 'mcpServers' | 'servers';
  entry: Record<string, unknown>;
}

export function clientTarget(
  client: McpClient,
  url: string,
  deps: Pick<Deps, 'homedir' | 'cwd' | 'platform' | 'env'>,
): Target {
  switch (client) {
    case 'claude-desktop': {
      // Claude Desktop's config file starts local (stdio) servers; mcp-remote bridges it to HTTP.
      const dir =
        deps.platform === 'darwin'
          ? join(deps.homedir, 'Library', 'Application Support', 'Claude')
          : deps.platform === 'win32'
            ? join(deps.env['APPDATA'] ?? join(deps.homedir, 'AppData', 'Roaming'), 'Claude')
            : join(deps.homedir, '.config', 'Claude');
      return {
        file: join(dir, 'claude_desktop_config.json'),
        key: 'mcpServers',
        entry: { command: 'npx', args: ['-y', 'mcp-remote', url, '--allow-http'] },
      };
    }
    case 'claude-code':
      return { file: join(deps.cwd, '.mcp.json'), key: 'mcpServers', entry: { type: 'http', url } };
    case 'cursor':
      return { file: join(deps.homedir, '.cursor', 'mcp.json'), key: 'mcpServers', entry: { url } };
    case 'vscode':
      return { file: join(deps.cwd, '.vscode', 'mcp.json'), key: 'servers', entry: { type: 'http', url } };
  }
}

export async function run(
  globals: GlobalOptions,
  options: Record<string, unknown>,
  _args: string[],
  deps: Deps,
) {
  const ui = await Ui.create(deps, globals);
  const client = options['client'] as McpClient;
  const name = typeof options['name'] === 'string' ? options['name'] : 'mcp-secure';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new CliError('usage', `invalid --name "${sanitize(name, 40)}"`, {
      hint: 'letters, digits, ".", "_" and "-"',
    });
  }
  const eff = await loadProfile(deps, globals);
  const port = typeof options['port'] === 'string' ? Number(options['port']) : eff.profile.local_port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CliError('usage', 'invalid --port', { hint: 'use a port number, e.g. 7700' });
  }
  const path = eff.profile.mcp_url ? new URL(eff.profile.mcp_url).pathname : '/mcp';
  const url = `http://127.0.0.1:${port}${path}`;
  const target = clientTarget(client, url, deps);
  const snippet = { [target.key]: { [name]: target.entry } };

  if (options['write'] !== true) {
    ui.out(JSON.stringify(snippet, null, 2));
    ui.info(
      ui.c.dim(
        `Merge this into ${target.file} (or run again with --write). Start the tunnel with \`mcp-secure connect --tenant NAME\`.`,
      ),
    );
    return 0;
  }
  let existing: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(await readFile(target.file, 'utf8'));
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
  const servers = (existing[target.key] as Record<string, unknown> | undefined) ?? {};
  const replaced = name in servers;
  existing[target.key] = { ...servers, [name]: target.entry };
  await writeFileAtomic(target.file, `${JSON.stringify(existing, null, 2)}\n`);
  ui.success(`${replaced ? 'Updated' : 'Added'} "${name}" in ${target.file} (${url}); everything else kept.`);
  return 0;
}
