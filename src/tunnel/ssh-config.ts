/**
 * ~/.ssh/config read the way OpenSSH 9 reads it (readconf.c), for machines with no `ssh` (where `ssh -G`
 * gives OpenSSH's own answer, hops.ts uses that). It resolves a destination to the options a tunnel needs,
 * in `ssh -G`'s own form (lower-case keys, values as ssh -G prints them), so that one function turns either
 * into hops and a differential test can hold this parser against `ssh -G` (test/e2e/ssh-config-diff.test.ts).
 *
 * What OpenSSH does and this does too: first value wins (IdentityFile accumulates, duplicates dropped);
 * `Host` patterns match the destination as given, case-sensitively, `!` vetoes; `Match` with `all`, `host`,
 * `originalhost`, `user`, `localuser` (pattern lists, negation; `host` sees the HostName set so far, `%h`
 * expanded); `Include` with globs, relative to ~/.ssh, conditional inside a Host/Match block (nothing of a
 * file included from an inactive block applies), at most 16 deep; `Keyword=value`, keywords in any case;
 * double and single quotes; a word starting with `#` ends the line (`Port 2222 # office`); ProxyJump and
 * ProxyCommand exclude each other, the first one set wins (`none` included); HostName `%h` and `%%`, then
 * lower-cased; ServerAliveInterval in time units (`1m30s`). `Match exec`, `canonical` and `final` cannot be
 * decided without running or resolving anything: such a block is not applied, and `resolve` says so.
 */
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { CliError, sanitize } from '../errors.js';
import { wildcardMatch } from './glob.js';

/** Options as `ssh -G` prints them: lower-case keys, each with its values (IdentityFile has several). */
export type SshOptions = Map<string, string[]>;

interface Line {
  key: string;
  args: string[];
  /** The rest of the line after the keyword, for the options that take a command (ProxyCommand). */
  rest: string;
  file: string;
  line: number;
}

/** One file's lines, its Include directives expanded later (they depend on which block is active). */
type Parsed = Line[];

const MAX_INCLUDE_DEPTH = 16;
const MAX_IDENTITY_FILES = 100;

/**
 * OpenSSH's argv_split with terminate_on_comment (misc.c): words split at spaces and tabs; double or single
 * quotes group; a backslash escapes a quote, a backslash or a space; a word that starts with `#` outside
 * quotes ends the line.
 */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= text.length) break;
    if (text[i] === '#') break;
    let word = '';
    let quote: string | undefined;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\\' && i + 1 < text.length && /["'\\ ]/.test(text[i + 1]!)) {
        word += text[++i];
      } else if (quote) {
        if (c === quote) quote = undefined;
        else word += c;
      } else if (c === '"' || c === "'") {
        quote = c;
      } else if (c === ' ' || c === '\t') {
        break;
      } else {
        word += c;
      }
    }
    if (quote) throw new Error('unterminated quote');
    out.push(word);
  }
  return out;
}

function parseText(text: string, file: string): Parsed {
  const lines: Parsed = [];
  text.split('\n').forEach((raw, index) => {
    // readconf.c: trailing whitespace stripped (\f allowed at the end), then the keyword, one `=` allowed.
    const line = raw.replace(/[ \t\r\f]+$/, '');
    const m = line.match(/^[ \t]*([^ \t=]+)[ \t]*(?:=[ \t]*)?(.*)$/);
    if (!m || m[1]!.startsWith('#')) return;
    let args: string[];
    try {
      args = splitArgs(m[2]!);
    } catch {
      throw new CliError('usage', `${sanitize(file, 200)} line ${index + 1}: unterminated quote`, {
        hint: 'fix the line, then `ssh -G HOST` should accept the file',
      });
    }
    lines.push({ key: m[1]!.toLowerCase(), args, rest: m[2]!, file, line: index + 1 });
  });
  return lines;
}

/** OpenSSH's match_pattern (`*`, `?`), case-sensitive: glob.ts, without a regular expression. */
function matchPattern(text: string, pattern: string): boolean {
  return wildcardMatch(pattern, text);
}

/** match_pattern_list (match.c): 1 on a match, -1 when a negated pattern matched, 0 otherwise. */
function matchList(text: string, list: string, lower: boolean): -1 | 0 | 1 {
  let got: 0 | 1 = 0;
  const t = lower ? text.toLowerCase() : text;
  for (const raw of list.split(',')) {
    const negated = raw.startsWith('!');
    const p = (negated ? raw.slice(1) : raw).slice(0, 1024);
    if (matchPattern(t, lower ? p.toLowerCase() : p)) {
      if (negated) return -1;
      got = 1;
    }
  }
  return got;
}

/** convtime (misc.c): seconds from `90`, `1m30s`, `1h`; undefined for anything else. */
export function convtime(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  const re = /(\d+)([smhdwSMHDW])?/gy;
  let at = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (units[(m[2] ?? 's').toLowerCase()] ?? 1);
    at = re.lastIndex;
  }
  return at === text.length && text.length > 0 ? total : undefined;
}

export interface ResolveContext {
  /** The home whose ~/.ssh holds relative Includes. */
  home: string;
  /** The local account name (the default User, `Match localuser`). */
  localUser: string;
}

export interface Resolution {
  options: SshOptions;
  /** Match blocks that could not be decided here (exec, canonical, final) and were not applied. */
  undecided: string[];
}

/** Parses `[user@]host[:port]` (IPv6 in brackets) and `ssh://[user@]host[:port]`. */
export function parseDestination(text: string): {
  user: string | undefined;
  host: string;
  port: number | undefined;
} {
  const uri = text.startsWith('ssh://') ? text.slice('ssh://'.length).replace(/\/$/, '') : text;
  const at = uri.lastIndexOf('@');
  const user = at >= 0 ? uri.slice(0, at) : undefined;
  const rest = at >= 0 ? uri.slice(at + 1) : uri;
  const bracketed = rest.match(/^\[([^\]]+)\](?::(\d+))?$/);
  if (bracketed) return { user, host: bracketed[1]!, port: bracketed[2] ? Number(bracketed[2]) : undefined };
  const colon = rest.lastIndexOf(':');
  if (colon > 0 && rest.indexOf(':') === colon && /^\d+$/.test(rest.slice(colon + 1))) {
    return { user, host: rest.slice(0, colon), port: Number(rest.slice(colon + 1)) };
  }
  return { user, host: rest, port: undefined };
}

/** A TCP port, or a usage error naming where the bad value came from (never NaN handed to ssh2). */
function portNumber(text: string, where: string): number {
  const port = Number(text);
  if (/^\d{1,5}$/.test(text) && port >= 1 && port <= 65535) return port;
  throw new CliError('usage', `${sanitize(where, 200)} is not a port number: "${sanitize(text, 20)}"`, {
    hint: 'use a number from 1 to 65535',
  });
}

/** glob(3) for an Include: `*`, `?` in the last path components, sorted as glob sorts (bounded). */
async function globFiles(pattern: string): Promise<string[]> {
  const parts = pattern.split('/');
  let bases = [parts[0] === '' ? '/' : '.'];
  for (const part of parts.slice(parts[0] === '' ? 1 : 0)) {
    if (part === '') continue;
    const next: string[] = [];
    for (const base of bases) {
      if (!/[*?[]/.test(part)) {
        next.push(join(base, part));
        continue;
      }
      const names = await readdir(base).catch(() => [] as string[]);
      for (const n of names.sort())
        if (!n.startsWith('.') || part.startsWith('.')) if (matchPattern(n, part)) next.push(join(base, n));
    }
    bases = next.slice(0, 256);
  }
  return bases;
}

/** Reads a config file (and what it Includes) into lines, once per path, bounded. */
class Files {
  readonly #cache = new Map<string, Promise<Parsed | undefined>>();
  read(file: string): Promise<Parsed | undefined> {
    let p = this.#cache.get(file);
    if (!p) {
      p = readFile(file, 'utf8').then(
        (text) => parseText(text, file),
        () => undefined,
      );
      this.#cache.set(file, p);
    }
    return p;
  }
}

/**
 * Resolves `destination` through `file` the way OpenSSH 9.2 does (ssh.c main: the user's file only when
 * given `-F`; readconf.c process_config_line): the options a tunnel needs, as `ssh -G` prints them.
 */
export async function resolveSshConfig(
  file: string | undefined,
  destination: string,
  ctx: ResolveContext,
  files = new Files(),
): Promise<Resolution> {
  const dest = parseDestination(destination);
  const host = dest.host;
  const first = new Map<string, string>();
  const identityFiles: string[] = [];
  const undecided: string[] = [];
  let jump: string | undefined;
  let command: string | undefined;
  const set = (key: string, value: string) => {
    if (!first.has(key)) first.set(key, value);
  };

  const apply = (l: Line) => {
    const a = l.args;
    switch (l.key) {
      case 'hostname':
      case 'user':
      case 'hostkeyalias':
      case 'identitiesonly':
      case 'serveralivecountmax':
      case 'userknownhostsfile':
      case 'globalknownhostsfile':
        if (a.length) set(l.key, l.key.endsWith('knownhostsfile') ? a.join(' ') : a[0]!);
        return;
      case 'port':
        if (a.length) {
          portNumber(a[0]!, `Port in ${l.file} line ${l.line}`);
          set('port', a[0]!);
        }
        return;
      case 'serveraliveinterval': {
        const s = a[0] === undefined ? undefined : convtime(a[0]);
        if (s !== undefined) set(l.key, String(s));
        return;
      }
      case 'identityfile':
        if (a[0] !== undefined && !identityFiles.includes(a[0]) && identityFiles.length < MAX_IDENTITY_FILES)
          identityFiles.push(a[0]);
        return;
      case 'proxyjump':
        // ProxyJump and ProxyCommand exclude each other (readconf.c; measured with ssh -G 9.2): the first
        // ProxyJump wins, `none` included, unless a ProxyCommand came first; a ProxyCommand is ignored after
        // a real ProxyJump, not after `ProxyJump none`.
        if (jump === undefined && command === undefined && a[0] !== undefined) jump = a[0];
        return;
      case 'proxycommand': {
        const cmd = l.rest.replace(/^[ \t=]+/, '');
        if (command === undefined && (jump === undefined || jump.toLowerCase() === 'none') && cmd)
          command = cmd;
        return;
      }
      default:
        return;
    }
  };

  /** Match criteria (readconf.c match_cfg_line); undefined when they cannot be decided here. */
  const matches = (l: Line): boolean | undefined => {
    const a = [...l.args];
    const hostname = first.get('hostname');
    const current = hostname ? expandHostName(hostname, host) : host;
    const ruser = dest.user ?? first.get('user') ?? ctx.localUser;
    let result = true;
    let decided = true;
    if (a.length === 0) return false;
    while (a.length) {
      let crit = a.shift()!.toLowerCase();
      const negate = crit.startsWith('!');
      if (negate) crit = crit.slice(1);
      if (crit === 'all') {
        if (negate) result = false;
        continue;
      }
      if (crit === 'canonical' || crit === 'final') {
        decided = false;
        continue;
      }
      const arg = a.shift();
      if (arg === undefined) return false;
      let hit: boolean;
      if (crit === 'host') hit = matchList(current, arg, true) === 1;
      else if (crit === 'originalhost') hit = matchList(host, arg, true) === 1;
      else if (crit === 'user') hit = matchList(ruser, arg, false) === 1;
      else if (crit === 'localuser') hit = matchList(ctx.localUser, arg, false) === 1;
      else {
        decided = false; // exec, localnetwork, tagged: nothing here runs commands or reads interfaces
        continue;
      }
      if (hit === negate) result = false;
    }
    if (!decided) {
      undecided.push(`${l.file} line ${l.line}`);
      return undefined;
    }
    return result;
  };

  const walk = async (lines: Parsed, depth: number, neverMatch: boolean): Promise<void> => {
    let active = true;
    for (const l of lines) {
      if (l.key === 'host') {
        if (neverMatch) {
          active = false;
          continue;
        }
        let m = false;
        for (const p of l.args) {
          const negated = p.startsWith('!');
          if (matchPattern(host, negated ? p.slice(1) : p)) {
            if (negated) {
              m = false;
              break;
            }
            m = true;
          }
        }
        active = m;
      } else if (l.key === 'match') {
        active = neverMatch ? false : (matches(l) ?? false);
      } else if (l.key === 'include') {
        if (depth >= MAX_INCLUDE_DEPTH) continue;
        for (const arg of l.args) {
          const pattern = arg.startsWith('~')
            ? arg.replace(/^~(?=\/|$)/, ctx.home)
            : isAbsolute(arg)
              ? arg
              : join(ctx.home, '.ssh', arg);
          for (const f of await globFiles(pattern)) {
            const inc = await files.read(f);
            if (inc) await walk(inc, depth + 1, neverMatch || !active);
          }
        }
      } else if (active && !neverMatch) {
        apply(l);
      }
    }
  };

  if (file) {
    const lines = await files.read(file);
    if (lines) await walk(lines, 0, false);
  }

  const options: SshOptions = new Map();
  const hostname = first.get('hostname');
  options.set('hostname', [(hostname ? expandHostName(hostname, host) : host).toLowerCase()]);
  options.set('user', [dest.user ?? first.get('user') ?? ctx.localUser]);
  options.set('port', [
    String(
      dest.port !== undefined
        ? portNumber(String(dest.port), `the port of ${destination}`)
        : Number(first.get('port') ?? 22),
    ),
  ]);
  options.set(
    'identityfile',
    identityFiles.length
      ? identityFiles
      : [
          '~/.ssh/id_rsa',
          '~/.ssh/id_ecdsa',
          '~/.ssh/id_ecdsa_sk',
          '~/.ssh/id_ed25519',
          '~/.ssh/id_ed25519_sk',
          '~/.ssh/id_xmss',
          '~/.ssh/id_dsa',
        ],
  );
  options.set('identitiesonly', [first.get('identitiesonly')?.toLowerCase() === 'yes' ? 'yes' : 'no']);
  const countMax = first.get('serveralivecountmax');
  options.set('serveralivecountmax', [countMax && /^\d+$/.test(countMax) ? countMax : '3']);
  options.set('serveraliveinterval', [first.get('serveraliveinterval') ?? '0']);
  const alias = first.get('hostkeyalias');
  if (alias) options.set('hostkeyalias', [alias.toLowerCase()]);
  if (jump !== undefined && jump.toLowerCase() !== 'none') {
    options.set('proxyjump', [jump]);
    // ssh.c: the last jump host being the destination itself (same host, port and user) is refused.
    const last = parseDestination(jump.split(',').at(-1) ?? '');
    const o = (k: string) => options.get(k)?.[0];
    if (
      last.host === o('hostname') &&
      String(last.port ?? 22) === o('port') &&
      (last.user ?? o('user')) === o('user')
    ) {
      throw new CliError(
        'usage',
        `jumphost loop via ${sanitize(last.host, 80)} in ${sanitize(file ?? '', 200)}`,
        {
          hint: "fix that host's ProxyJump in the SSH configuration",
        },
      );
    }
  }
  if (command !== undefined && command !== 'none') options.set('proxycommand', [command]);
  // ssh -G prints these with ~ expanded (ssh.c expands them once the configuration is read).
  const tilde = (list: string) =>
    list
      .split(/\s+/)
      .map((f) => f.replace(/^~(?=\/|$)/, ctx.home))
      .join(' ');
  options.set('globalknownhostsfile', [
    tilde(first.get('globalknownhostsfile') ?? '/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2'),
  ]);
  options.set('userknownhostsfile', [
    tilde(first.get('userknownhostsfile') ?? '~/.ssh/known_hosts ~/.ssh/known_hosts2'),
  ]);
  return { options, undecided };
}

/** HostName's tokens (ssh.c: `%h` and `%%` only). */
function expandHostName(value: string, host: string): string {
  return value.replace(/%([%h])/g, (_, t: string) => (t === 'h' ? host : '%'));
}

/** A resolver for many destinations over one file (each file read once). */
export function sshConfigResolver(
  file: string | undefined,
  ctx: ResolveContext,
): (destination: string) => Promise<Resolution> {
  const files = new Files();
  return (destination) => resolveSshConfig(file, destination, ctx, files);
}
