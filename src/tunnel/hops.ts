/**
 * The SSH hops of a profile: its bastion and jump hosts, each resolved through ~/.ssh/config like
 * OpenSSH's ProxyJump (ssh_config(5)). Used by `connect`, `audit tail` and `doctor`.
 *
 * Where `ssh` is installed the configuration is OpenSSH's own answer (`ssh -G`: Include, Match, tokens,
 * exactly as ssh reads them); elsewhere the in-process parser (ssh-config.ts), which answers in the same
 * form, so one function makes hops of either (and test/e2e/ssh-config-diff.test.ts holds one against the other).
 */
import { createHash } from 'node:crypto';
import { hostname as localHostName, userInfo } from 'node:os';
import { join } from 'node:path';
import type { EffectiveProfile } from '../config/load.js';
import { requireSetting } from '../config/require.js';
import type { Deps } from '../io.js';
import type { Hop } from './ssh.js';
import type { SshOptions } from './ssh-config.js';

function expandHome(path: string, home: string): string {
  return path.replace(/^~(?=\/|$)/, home);
}

/** Looks a destination up: `ssh -G`'s options for it, or the in-process parser's in the same form. */
export type OptionsLookup = (destination: string) => Promise<SshOptions>;

export interface HopContext {
  /** The home the CLI uses (~ in paths, %d). */
  home: string;
  localUser: string;
  /** The profile's identity_file, offered to every hop first. */
  identityFile?: string;
}

/**
 * An IdentityFile's tokens as ssh expands them when it loads the identities (ssh.c
 * load_public_identity_files, ssh_config(5) TOKENS; `ssh -G` prints them unexpanded): `~`, %d %h %r %u %p %n
 * %l %L %i %k %C %%. An unknown token is left as written.
 */
export function expandIdentityFile(
  file: string,
  o: {
    home: string;
    host: string;
    port: number;
    user: string;
    original: string;
    localUser: string;
    alias?: string;
  },
): string {
  const thishost = localHostName();
  const short = thishost.split('.')[0] ?? thishost;
  const tokens: Record<string, () => string> = {
    '%': () => '%',
    d: () => o.home,
    h: () => o.host,
    r: () => o.user,
    u: () => o.localUser,
    p: () => String(o.port),
    n: () => o.original,
    l: () => thishost,
    L: () => short,
    i: () => String(process.getuid?.() ?? ''),
    k: () => o.alias ?? o.host,
    // ssh_connection_hash (OpenSSH 9.2): SHA-1 of %l %h %p %r, in hex.
    C: () => createHash('sha1').update(`${thishost}${o.host}${o.port}${o.user}`).digest('hex'),
  };
  return expandHome(file, o.home).replace(/%(.)/g, (all, t: string) => tokens[t]?.() ?? all);
}

const MAX_JUMP_DEPTH = 8;

/**
 * The hops to `destination`: ProxyJump as OpenSSH follows it (ssh.c: `ProxyJump a,b` runs `ssh -J a -W … b`,
 * so the first jump's own ProxyJump applies and the later ones' do not), jump hosts first, the bastion last.
 */
export async function chainHops(
  destination: string,
  jumps: string[] | undefined,
  lookup: OptionsLookup,
  ctx: HopContext,
): Promise<Hop[]> {
  const one = (key: string, m: SshOptions) => m.get(key)?.[0];
  // ssh -G prints ~ as is in some paths and expanded from the password database in others: both name the
  // home the rest of the CLI uses (they differ only when $HOME is not the account's home).
  const passwdHome = userInfo().homedir;
  const ownHome = (f: string) =>
    expandHome(f, ctx.home).replace(
      new RegExp(`^${passwdHome.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/\\.ssh/)`),
      ctx.home,
    );
  const own = ctx.identityFile ? [expandHome(ctx.identityFile, ctx.home)] : [];
  const toHop = (m: SshOptions, original: string): Hop => {
    const interval = Number(one('serveraliveinterval', m));
    const countMax = Number(one('serveralivecountmax', m));
    const proxy = one('proxycommand', m);
    const alias = one('hostkeyalias', m);
    const host = one('hostname', m) ?? original;
    const port = Number(one('port', m) ?? 22);
    const user = one('user', m) ?? ctx.localUser;
    const known = [
      ...(one('userknownhostsfile', m)?.split(/\s+/) ?? []),
      ...(one('globalknownhostsfile', m)?.split(/\s+/) ?? []),
    ].map((f) => ownHome(f));
    const originalHost = original
      .replace(/^ssh:\/\//, '')
      .replace(/^.*@/, '')
      .replace(/:\d+$/, '');
    return {
      host,
      port,
      user,
      identityFiles: [
        ...own,
        ...(m.get('identityfile') ?? []).map((f) =>
          ownHome(
            expandIdentityFile(f, {
              home: ctx.home,
              host,
              port,
              user,
              original: originalHost,
              localUser: ctx.localUser,
              ...(alias ? { alias } : {}),
            }),
          ),
        ),
      ],
      // `ssh -G` prints 0 for an unset ServerAliveInterval as for `ServerAliveInterval 0`: a tunnel keeps
      // alive either way (the transport's 15 s default), so a dead path is noticed and re-dialled.
      ...(Number.isFinite(interval) && interval > 0 ? { keepaliveIntervalMs: interval * 1000 } : {}),
      ...(Number.isFinite(countMax) && countMax > 0 ? { keepaliveCountMax: countMax } : {}),
      ...(proxy && proxy !== 'none' ? { proxyCommand: proxy } : {}),
      ...(alias && alias !== 'none' ? { hostKeyAlias: alias } : {}),
      ...(known.length ? { knownHostsFiles: known } : {}),
      ...(one('identitiesonly', m) === 'yes' ? { identitiesOnly: true } : {}),
    };
  };
  const chain = async (dest: string, given: string[] | undefined, depth: number): Promise<Hop[]> => {
    const m = await lookup(dest);
    const jumpText = given ? given.join(',') : one('proxyjump', m);
    const list = jumpText && jumpText !== 'none' ? jumpText.split(',').filter(Boolean) : [];
    if (list.length === 0 || depth >= MAX_JUMP_DEPTH) return [toHop(m, dest)];
    const first = await chain(list[0]!, undefined, depth + 1);
    const rest = await Promise.all(list.slice(1).map(async (j) => toHop(await lookup(j), j)));
    return [...first, ...rest, toHop(m, dest)];
  };
  return chain(destination, jumps, 0);
}

/** `ssh -G` for one destination, reading the same files the OpenSSH transport's generated config does. */
async function sshG(ssh: string, destination: string, deps: Deps): Promise<SshOptions> {
  const { sshG: run, sshDestination } = await import('./openssh.js');
  const { readFile } = await import('node:fs/promises');
  const userConfig = join(deps.homedir, '.ssh', 'config');
  // OpenSSH finds ~ from the password database; name the home the CLI uses (openssh.ts does the same).
  const ownHome = deps.homedir !== userInfo().homedir;
  const exists = await readFile(userConfig, 'utf8').then(
    () => true,
    () => false,
  );
  const args = ownHome ? ['-F', exists ? userConfig : '/dev/null'] : [];
  return run(ssh, [...args, '--', sshDestination(destination)], deps.env);
}

/** The in-process lookup over ~/.ssh/config (no /etc/ssh/ssh_config: ssh reads it only without -F). */
export async function inProcessLookup(home: string, localUser: string): Promise<OptionsLookup> {
  const { sshConfigResolver } = await import('./ssh-config.js');
  const resolve = sshConfigResolver(join(home, '.ssh', 'config'), { home, localUser });
  return async (destination) => (await resolve(destination)).options;
}

/** The hops from the profile and ~/.ssh/config: jump hosts first, the bastion last. */
export async function resolveHops(eff: EffectiveProfile, deps: Deps): Promise<Hop[]> {
  const bastion = requireSetting(
    eff,
    'bastion',
    'the SSH host the MCP endpoint is reached from',
    'user@bastion.example.com',
  );
  const { findSsh } = await import('./openssh.js');
  const ssh = await findSsh(deps.env);
  const localUser = deps.env['USER'] ?? userInfo().username;
  const lookup: OptionsLookup = ssh
    ? (d) => sshG(ssh, d, deps)
    : await inProcessLookup(deps.homedir, localUser);
  return chainHops(bastion, eff.profile.jump, lookup, {
    home: deps.homedir,
    localUser,
    ...(eff.profile.identity_file ? { identityFile: eff.profile.identity_file } : {}),
  });
}
