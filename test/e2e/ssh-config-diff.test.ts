/**
 * Differential test: the in-process ssh_config parser (src/tunnel/ssh-config.ts, used where no `ssh` is
 * installed) against the real `ssh -G` as the oracle, over random configs: Host patterns (wildcards,
 * negation, case), Match (host, originalhost, user, localuser, all, negated), Include (files and globs,
 * inside blocks), `Keyword=value` and keyword case, quotes, comments after values (`Port 2222 # office`),
 * HostName tokens, IdentityFile tokens, ProxyJump chains and ProxyCommand. Compared: the options a tunnel
 * uses, as ssh -G prints them, and the route connect builds from them (hops.ts chainHops: the hops, their
 * users, ports and expanded identity files). Seeded, so a failure names a config that can be replayed;
 * bounded by count and by time.
 */
import assert from 'node:assert/strict';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { chainHops, type OptionsLookup } from '../../src/tunnel/hops.js';
import { sshDestination, sshG } from '../../src/tunnel/openssh.js';
import { type SshOptions, sshConfigResolver } from '../../src/tunnel/ssh-config.js';
import { tempDir } from '../helpers/deps.js';
import { gate, missing } from '../helpers/requires.js';

const g = gate(missing('ssh'));

const CONFIGS = Number(process.env['MCP_SECURE_DIFF_CONFIGS'] ?? 500);
const TIME_LIMIT_MS = 100_000;
const dump = process.env['MCP_SECURE_DIFF_DUMP'];
const SEED = Number(process.env['MCP_SECURE_DIFF_SEED'] ?? 20261202);
const KEYS = [
  'hostname',
  'user',
  'port',
  'identityfile',
  'proxyjump',
  'proxycommand',
  'identitiesonly',
  'hostkeyalias',
  'serveraliveinterval',
  'serveralivecountmax',
  'userknownhostsfile',
  'globalknownhostsfile',
];

/** mulberry32: a small seeded PRNG, so each config can be replayed from the seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['web', 'db', 'Web', 'bastion', 'jump1', 'jump2', 'prod-db', 'x.example.com', 'X.Example.com'];
const PATTERNS = [...NAMES, '*', 'prod-*', '*.example.com', 'j?mp*', '!db', '!*.example.com', 'WEB', 'jump*'];

function generate(rand: () => number, dir: string): { main: string; files: Record<string, string> } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number) => rand() < p;
  const kw = (k: string) => pick([k, k.toLowerCase(), k.toUpperCase(), k[0]!.toLowerCase() + k.slice(1)]);
  const sep = () => pick([' ', ' ', '=', ' = ', '\t', '  ']);
  const opt = (): string => {
    const which = pick([
      'HostName',
      'HostName',
      'User',
      'Port',
      'Port',
      'IdentityFile',
      'IdentityFile',
      'ProxyJump',
      'ProxyCommand',
      'IdentitiesOnly',
      'HostKeyAlias',
      'UserKnownHostsFile',
      'ServerAliveInterval',
      'ServerAliveCountMax',
    ]);
    const value = {
      HostName: () =>
        pick(['10.0.0.7', '%h.internal', 'LocalHost', 'Mixed.Example.COM', '%h', 'lit%%eral', 'db.internal']),
      User: () => pick(['ops', 'admin', 'Deploy', '"svc user"']),
      Port: () => pick(['2222', '2200 # office', '22', '"2022"', '2201 #x']),
      IdentityFile: () =>
        pick([
          '~/.ssh/id_%h',
          '%d/.ssh/k_%r',
          '/keys/%u_%p',
          '~/.ssh/id_ed25519',
          '"/path with space/k"',
          '/keys/%n',
          '/keys/%%lit',
          '~/.ssh/%r@%h:%p',
          `${dir}/k # a key`,
        ]),
      ProxyJump: () => pick(['jump1', 'jump1,jump2', 'ops@jump2:2200', 'none', 'jump2']),
      ProxyCommand: () => pick(['nc %h %p', 'none', 'ssh -W %h:%p jump1 # via jump1']),
      IdentitiesOnly: () => pick(['yes', 'no', 'Yes']),
      HostKeyAlias: () => pick(['Alias.Example', 'bastion-key']),
      UserKnownHostsFile: () => pick(['~/.ssh/kh_corp', '/etc/corp_known_hosts ~/.ssh/known_hosts']),
      ServerAliveInterval: () => pick(['30', '1m', '0', '1m30s']),
      ServerAliveCountMax: () => pick(['2', '5']),
    }[which]!();
    return `${chance(0.7) ? '  ' : ''}${kw(which)}${sep()}${value}`;
  };
  const block = (): string[] => {
    const head = pick([
      () =>
        `${kw('Host')} ${Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(PATTERNS)).join(' ')}`,
      () => `${kw('Host')} ${pick(PATTERNS)}`,
      () => `Match host ${pick(PATTERNS)}${chance(0.3) ? `,${pick(PATTERNS)}` : ''}`,
      () => `Match originalhost ${pick(PATTERNS)}`,
      () => `Match user ${pick(['ops', 'root', 'o*', '!admin'])}`,
      () => `Match localuser ${pick(['root', 'nobody', '*'])}`,
      () => `Match !host ${pick(PATTERNS)}`,
      () => `Match host ${pick(PATTERNS)} user ${pick(['ops', 'root', 'Deploy'])}`,
      () => 'Match all',
    ])();
    const lines = [head];
    for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n; i++) lines.push(opt());
    if (chance(0.15)) lines.push('  # a comment line');
    return lines;
  };
  const files: Record<string, string> = {};
  const body = (depth: number): string[] => {
    const out: string[] = [];
    for (let i = 0, n = 1 + Math.floor(rand() * 5); i < n; i++) {
      if (depth === 0 && chance(0.2)) {
        const name = `inc-${Object.keys(files).length}.conf`;
        files[`conf.d/${name}`] = body(1).join('\n');
        out.push(chance(0.5) ? `  Include ${dir}/conf.d/${name}` : `Include ${dir}/conf.d/*.conf`);
      }
      if (chance(0.2)) out.push(opt()); // before any Host line: applies to every host
      out.push(...block());
      if (chance(0.1)) out.push('');
    }
    return out;
  };
  return { main: `${body(0).join('\n')}\n`, files };
}

g.test(
  `ssh_config: the in-process parser resolves what ssh -G resolves (${CONFIGS} random configs, seed ${SEED})`,
  async (t) => {
    const ssh = (await import('../../sandbox/which.js')).which('ssh')!;
    const rand = prng(SEED);
    const root = await tempDir('mcp-secure-diff-');
    const home = userInfo().homedir; // ssh finds ~ and %d in the password database: the parser is told the same
    const localUser = userInfo().username;
    const started = Date.now();
    let compared = 0;
    let agreed = 0;
    const failures: string[] = [];
    for (let n = 0; n < CONFIGS && Date.now() - started < TIME_LIMIT_MS; n++) {
      const dir = join(root, String(n));
      await mkdir(join(dir, 'conf.d'), { recursive: true });
      const { main, files } = generate(rand, dir);
      const file = join(dir, 'config');
      await writeFile(file, main, { mode: 0o600 });
      for (const [name, text] of Object.entries(files))
        await writeFile(join(dir, name), `${text}\n`, { mode: 0o600 });
      const oracleCache = new Map<string, Promise<SshOptions>>();
      const oracle: OptionsLookup = (d) => {
        let p = oracleCache.get(d);
        if (!p) {
          // A long time limit: on a loaded machine a slow ssh -G must not count as its answer.
          p = sshG(ssh, ['-F', file, '--', sshDestination(d)], process.env, 60_000);
          oracleCache.set(d, p);
        }
        return p;
      };
      const resolve = sshConfigResolver(file, { home, localUser });
      const ours: OptionsLookup = async (d) => (await resolve(d)).options;
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
      for (let d = 0; d < 3; d++) {
        const name = pick(NAMES);
        const dest = pick([name, name, `ops@${name}`, `${name}:2022`, `Deploy@${name}:2300`]);
        compared++;
        const summary = async (lookup: OptionsLookup) => {
          try {
            const m = await lookup(dest);
            const opts = Object.fromEntries(KEYS.map((k) => [k, m.get(k) ?? []]));
            const route = await chainHops(dest, undefined, lookup, { home, localUser });
            return JSON.stringify({ opts, route });
          } catch (err) {
            return `error (${(err as Error).constructor.name})`;
          }
        };
        const [want, got] = await Promise.all([summary(oracle), summary(ours)]);
        // For measuring another parser against the same cases (docs/benchmarks.md names the figures).
        if (dump) await appendFile(dump, `${JSON.stringify({ file, dest, want })}\n`);
        if (want === got) agreed++;
        else if (failures.length < 5)
          failures.push(
            `config ${n} (seed ${SEED}), destination ${dest}:\n${main}\n${Object.entries(files)
              .map(([k, v]) => `--- ${k}\n${v}`)
              .join('\n')}\nssh -G: ${want}\nparser: ${got}`,
          );
      }
    }
    t.diagnostic(
      `agreement: ${agreed} of ${compared} (${((100 * agreed) / compared).toFixed(1)}%) in ${Date.now() - started} ms`,
    );
    assert.ok(compared >= 150, `only ${compared} comparisons within the time limit`);
    assert.equal(agreed, compared, failures.join('\n\n'));
  },
);
