/**
 * The SSH hops of a profile: its bastion and jump hosts, each resolved through ~/.ssh/config like
 * OpenSSH's ProxyJump (ssh_config(5)). Used by `connect`, `audit tail` and `doctor`.
 */
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { EffectiveProfile } from '../config/load.js';
import { requireSetting } from '../config/require.js';
import type { Deps } from '../io.js';
import type { Hop } from './ssh.js';

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function expandHome(path: string, home: string): string {
  return path.replace(/^~(?=\/|$)/, home);
}

/** The hops from the profile and ~/.ssh/config: jump hosts first, the bastion last. */
export async function resolveHops(eff: EffectiveProfile, deps: Deps): Promise<Hop[]> {
  const bastion = requireSetting(
    eff,
    'bastion',
    'the SSH host the MCP endpoint is reached from',
    'user@bastion.example.com',
  );
  const { loadSshConfig } = await import('../tunnel/ssh-config.js');
  const home = deps.homedir;
  const resolve = await loadSshConfig(home);
  const main = resolve(bastion);
  const jumps = eff.profile.jump ?? main.proxyJump;
  const defaultUser = deps.env['USER'] ?? userInfo().username;
  const own = eff.profile.identity_file ? [expandHome(eff.profile.identity_file, home)] : [];
  const toHop = (spec: ReturnType<typeof resolve>): Hop => ({
    host: spec.hostName,
    port: spec.port,
    user: spec.user ?? defaultUser,
    identityFiles: [
      ...own,
      ...(spec.identityFiles.length
        ? spec.identityFiles
        : DEFAULT_IDENTITIES.map((f) => join(home, '.ssh', f))),
    ],
    ...(spec.serverAliveInterval !== undefined
      ? { keepaliveIntervalMs: spec.serverAliveInterval * 1000 }
      : {}),
    ...(spec.serverAliveCountMax !== undefined ? { keepaliveCountMax: spec.serverAliveCountMax } : {}),
  });
  return [...jumps.map((j) => toHop(resolve(j))), toHop(main)];
}
