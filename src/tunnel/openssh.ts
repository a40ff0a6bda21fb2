/**
 * The system OpenSSH client as the SSH transport: one `ssh -N` per dial with a local forward from a 0600
 * Unix socket in the session's private 0700 directory to the upstream (`-L socket:host:port`), so
 * ~/.ssh/config (Include, Match, ProxyCommand, ProxyJump of the jump hosts), every known_hosts source,
 * certificates, FIDO keys, post-quantum kex and 2FA prompts behave exactly as they do for `ssh`.
 *
 * Why `-N -L` for the proxy: `-W` costs a process per local connection (measured in docs/benchmarks.md);
 * `-L` to a Unix socket costs one connect(2) and the channel open that `ssh2` would do too. The proxy must
 * read every request anyway (it adds the token). `--raw` connections are different: nothing needs to see
 * their bytes, and relaying them through node cost a second copy of every byte (0.35–0.6× `ssh -L` on a
 * loaded 2-core machine), so the same ssh is also a ControlMaster and each raw connection is handed to it
 * (`adopt`): the socket's descriptor goes to the master over its control socket as a stdio forward of the
 * mux protocol, spoken in-process (openssh-mux.ts), and the master reads and writes the socket itself.
 * That was an `ssh -S … -W host:port` process per connection before: a fork+exec of ssh for each (fresh
 * connection p50 11–12 ms against ~2 ms for `ssh -L`) and one process per open connection (a burst of
 * 1,000 was 1,000 ssh processes, at 0.16–0.4× `ssh -L`'s req/s); the descriptor pass is one connect(2)
 * and three writes (docs/benchmarks.md). Bounded: at most MAX_PENDING_HANDOFFS hand-offs awaiting the
 * master's answer (its listen backlog is 64); beyond that, and until the control socket exists, a
 * connection is relayed through the `-L` socket (open()). Where Node cannot pass descriptors
 * (muxAvailable), the `ssh -W` process it was, at most MAX_MUX_PROCESSES alive at once, the rest relayed.
 *
 * Our settings reach every hop, ProxyJump's own `ssh -W` children included, because they are in a
 * generated config file passed with `-F` (ssh.c passes `-F` on to ProxyJump's children): the forced
 * options first (first value wins in ssh_config), then `Include` of the user's ~/.ssh/config and the
 * system /etc/ssh/ssh_config, then our defaults the user's files may override. The profile's pinned
 * fingerprints reach OpenSSH through `KnownHostsCommand`: a host key whose fingerprint is pinned is
 * printed as known; the known_hosts files are read first, so a pin never overrides a changed key there.
 *
 * No secret ever goes into ssh's argv or its files: the tenant token is never given to ssh at all.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { constants, statSync, watch } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { CliError, sanitize } from '../errors.js';
import { MuxError, type MuxForward, muxAvailable, muxStdioForward } from './openssh-mux.js';
import type { Transport, UpstreamTarget } from './transport.js';
import { targetLabel } from './transport.js';

/** The first `ssh` on PATH that can be executed, or undefined. */
export async function findSsh(
  env: Readonly<Record<string, string | undefined>>,
): Promise<string | undefined> {
  for (const dir of (env['PATH'] ?? '').split(delimiter).slice(0, 64)) {
    if (!dir.startsWith('/')) continue; // a relative PATH entry would run whatever ssh the cwd holds
    const file = join(dir, 'ssh');
    try {
      await access(file, constants.X_OK);
      if ((await stat(file)).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The session's private directory: 0700, under $XDG_RUNTIME_DIR when there is one; removed at the end. */
export async function privateDir(env: Readonly<Record<string, string | undefined>>): Promise<{
  path: string;
  remove(): Promise<void>;
}> {
  const runtime = env['XDG_RUNTIME_DIR'];
  const base = runtime?.startsWith('/') ? runtime : (env['TMPDIR'] ?? tmpdir());
  const path = await mkdtemp(join(base, 'mcp-secure-'));
  await chmod(path, 0o700);
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface OpenSshRoute {
  /** The bastion as the profile names it: `[user@]host[:port]` or a Host alias of ~/.ssh/config. */
  destination: string;
  /** The profile's jump hosts (`-J`); undefined: whatever ~/.ssh/config says (ProxyJump/ProxyCommand). */
  jumps: string[] | undefined;
}

export interface OpenSshOptions {
  ssh: string;
  route: OpenSshRoute;
  /** The forward's far end, as the last hop reaches it. */
  target: UpstreamTarget;
  /** The session's private 0700 directory (privateDir). */
  dir: string;
  /** The home whose ~/.ssh is used (the same one the ssh2 transport reads). */
  home: string;
  /** The profile's identity_file, offered to every hop as well as the agent's keys. */
  identityFile: string | undefined;
  pinned: readonly string[];
  /** `--accept-new-host-key`: StrictHostKeyChecking=accept-new instead of yes. */
  acceptNew: boolean;
  /**
   * A terminal is attached: ssh may ask there (2FA, a passphrase, an unknown host key with no other way).
   * Otherwise BatchMode: ssh never waits for an answer nobody can give.
   */
  interactive: boolean;
  /** An agent to use instead of SSH_AUTH_SOCK, and the only identity offered (the session certificate). */
  agent?: { socket: string; publicKeyFile: string };
  env: Readonly<Record<string, string | undefined>>;
  readyTimeoutMs?: number;
  /** Every stderr line of ssh, sanitized (for --debug and the re-dial reason). */
  onStderr?(line: string): void;
  /** Lines the user should see (host key added, ssh's warnings). */
  info(line: string): void;
  warn(line: string): void;
}

/** `[user@]host:port` as ssh's URI form (ssh(1): `ssh://[user@]hostname[:port]`); anything else as is. */
export function sshDestination(text: string): string {
  if (text.startsWith('-')) {
    throw new CliError('usage', `the SSH destination "${sanitize(text, 60)}" starts with "-"`, {
      hint: 'set bastion to [user@]host[:port] or a Host from ~/.ssh/config',
    });
  }
  const m = text.match(/^(?:([^@]+)@)?(\[[^\]]+\]|[^:@[\]]+):(\d{1,5})$/);
  if (!m) return text;
  return `ssh://${m[1] ? `${m[1]}@` : ''}${m[2]}:${m[3]}`;
}

/** The `-L` spec: `socket:host:port` (IPv6 in brackets) or `socket:/remote/socket`. */
function forwardSpec(socket: string, target: UpstreamTarget): string {
  if ('socketPath' in target) return `${socket}:${target.socketPath}`;
  return `${socket}:${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}

/** A value for the generated ssh_config, quoted (readconf.c argv_split honours double quotes). */
function q(value: string): string {
  if (/["\n\r]/.test(value)) throw new CliError('usage', `unusable path for ssh: ${sanitize(value, 80)}`);
  return `"${value}"`;
}

/**
 * The KnownHostsCommand helper (arguments `%I %f %H %t %K`): prints `%H %t %K` when `%H=%f` is pinned
 * (pins are per hop, `HOST=SHA256:…`, HOST as known_hosts names it — the same token as `%H`) and no
 * known_hosts file lists `%H` at all. OpenSSH accepts a key when any source holds it, so a pin printed for
 * a host known_hosts knows with another key would override the "changed" verdict; a pin never does
 * (`ssh-keygen -F` finds hashed, revoked and CA lines too). It also notes the host and fingerprint it was asked about (`seen`) so that a refusal can name
 * the fingerprint as the ssh2 transport does. OpenSSH ends the connection if this exits non-zero
 * (ssh_config(5) KnownHostsCommand), so it never does.
 */
function knownHostsCommand(sshKeygen: string): string {
  return `#!/bin/sh
# Written by mcp-secure for one session; prints a host key as known when its fingerprint is pinned for the
# host and no known_hosts file lists the host at all: OpenSSH accepts a host when any source matches, so a
# pin printed next to a changed key in known_hosts would override it. A pin never does.
d=$(dirname "$0")
if [ "$1" = HOSTNAME ] && [ -n "$5" ]; then
  printf '%s %s\\n' "$3" "$2" >> "$d/seen"
  if grep -qxF -- "$3=$2" "$d/pins"; then
    while IFS= read -r f; do
      [ -f "$f" ] && ${JSON.stringify(sshKeygen)} -F "$3" -f "$f" >/dev/null 2>&1 && exit 0
    done < "$d/known-hosts-files"
    printf '%s %s %s\\n' "$3" "$4" "$5"
  fi
fi
exit 0
`;
}

export interface GeneratedConfig {
  configFile: string;
  socket: string;
  /** The master's control socket (ControlMaster), for `--raw` connections handed to ssh (adopt). */
  control: string;
}

/** Writes the session's ssh_config, pins and KnownHostsCommand helper into the private dir. */
export async function writeSshConfig(o: OpenSshOptions): Promise<GeneratedConfig> {
  const pins = join(o.dir, 'pins');
  const helper = join(o.dir, 'known-hosts-command');
  const configFile = join(o.dir, 'ssh_config');
  await writeFile(pins, o.pinned.map((p) => `${p}\n`).join(''), { mode: 0o600 });
  const userSsh = join(o.home, '.ssh');
  await writeFile(helper, knownHostsCommand(join(dirname(o.ssh), 'ssh-keygen')), { mode: 0o700 });
  // The files OpenSSH reads (ssh_config(5) defaults; the home the CLI uses): the helper's "listed at all".
  const files = [
    join(userSsh, 'known_hosts'),
    join(userSsh, 'known_hosts2'),
    '/etc/ssh/ssh_known_hosts',
    '/etc/ssh/ssh_known_hosts2',
  ];
  await writeFile(join(o.dir, 'known-hosts-files'), files.map((f) => `${f}\n`).join(''), { mode: 0o600 });
  // OpenSSH finds ~ from the password database, not $HOME: when they differ (a test's home, a sudo -E),
  // name the files of the home the rest of the CLI uses, as the ssh2 transport does.
  const ownHome = o.home !== userInfo().homedir;
  const lines = [
    '# Generated by mcp-secure for one connect session; removed when it ends.',
    `BatchMode ${o.interactive ? 'no' : 'yes'}`,
    // `ask` on a terminal: OpenSSH shows the fingerprint and asks; a changed key is refused either way.
    `StrictHostKeyChecking ${o.acceptNew ? 'accept-new' : o.interactive ? 'ask' : 'yes'}`,
    `KnownHostsCommand ${q(helper)} %I %f %H %t %K`,
    ...(ownHome
      ? [`UserKnownHostsFile ${q(join(userSsh, 'known_hosts'))} ${q(join(userSsh, 'known_hosts2'))}`]
      : []),
    // The session's forward only: no shell, no agent or X11 forwarding, no multiplexing into a master
    // the user started (its trust decisions were not ours), no LocalCommand.
    'SessionType none',
    'StdinNull yes',
    'RequestTTY no',
    'ForwardAgent no',
    'ForwardX11 no',
    'PermitLocalCommand no',
    'ControlMaster no',
    'ControlPath none',
    'ExitOnForwardFailure yes',
    'StreamLocalBindMask 0177',
    'StreamLocalBindUnlink yes',
    // No password prompt ever; 2FA (keyboard-interactive) only when a person can answer it.
    'PasswordAuthentication no',
    ...(o.interactive ? [] : ['KbdInteractiveAuthentication no']),
    ...(o.agent
      ? [
          `IdentityAgent ${q(o.agent.socket)}`,
          'IdentitiesOnly yes',
          `IdentityFile ${q(o.agent.publicKeyFile)}`,
        ]
      : o.identityFile
        ? [`IdentityFile ${q(o.identityFile)}`]
        : []),
    `Include ${q(join(userSsh, 'config'))}`,
    'Include /etc/ssh/ssh_config',
    // Defaults the user's files may override (first value wins).
    'Host *',
    '  ServerAliveInterval 15',
    '  ServerAliveCountMax 3',
    '  ConnectTimeout 15',
    '',
  ];
  await writeFile(configFile, lines.join('\n'), { mode: 0o600 });
  return { configFile, socket: join(o.dir, 'upstream.sock'), control: join(o.dir, 'mux') };
}

/** ssh's arguments: no secret among them (the token never reaches ssh). */
export function sshArgs(o: OpenSshOptions, generated: GeneratedConfig): string[] {
  const jumps = o.route.jumps;
  for (const j of jumps ?? []) sshDestination(j); // a "-" would be read as an option
  return [
    '-F',
    generated.configFile,
    // A control socket of our own in the private dir (ssh makes it 0600 and serves only our uid, mux.c),
    // command-line options winning over the generated `ControlMaster no`: `--raw` connections are handed to
    // this master through it (adopt), so their bytes never pass through node.
    // ssh binds it under a temporary name 17 characters longer (mux.c), and a path too long for
    // sun_path is fatal there: then no control socket, and --raw connections are relayed instead.
    ...(generated.control.length + 17 < 104
      ? ['-o', 'ControlMaster=yes', '-o', 'ControlPersist=no', '-S', generated.control]
      : []),
    '-N',
    '-L',
    forwardSpec(generated.socket, o.target),
    ...(jumps?.length ? ['-J', jumps.join(',')] : []),
    '--',
    sshDestination(o.route.destination),
  ];
}

/** OpenSSH's words on stderr, turned into the CLI's one-line errors (ssh's own text is the only signal). */
export function sshError(
  lines: string[],
  destination: string,
  exitCode: number | null,
  seen: Array<{ host: string; fingerprint: string }> = [],
): CliError {
  const text = lines.join('\n');
  const quote = (re: RegExp) => lines.find((l) => re.test(l));
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/.test(text)) {
    const words = quote(/has changed and you have requested strict checking/) ?? quote(/has changed/) ?? '';
    const host = words.match(/Host key for (\S+) has changed/)?.[1] ?? destination;
    return new CliError(
      'trust',
      `the host key of ${sanitize(host, 80)} has changed; refusing to connect (ssh: ${sanitize(words || 'REMOTE HOST IDENTIFICATION HAS CHANGED', 160)})`,
      {
        hint: `if you know why it changed, remove the old key (ssh-keygen -R '${sanitize(host, 80)}') and connect again`,
      },
    );
  }
  if (/REVOKED HOST KEY|marked as revoked/i.test(text)) {
    return new CliError('trust', `ssh refused the host key of ${destination}: it is marked @revoked`, {
      hint: "do not connect; tell the bastion's operators",
    });
  }
  if (
    /Host key verification failed|host key is known for .* strict checking|Certificate invalid/.test(text)
  ) {
    const words =
      quote(/No .* host key is known for|strict checking|Certificate/) ?? 'Host key verification failed.';
    const host = words.match(/is known for (\S+) and/)?.[1];
    const fp = host ? seen.find((s) => s.host === host)?.fingerprint : undefined;
    const what = host
      ? `unknown host key for ${sanitize(host, 80)}${fp ? ` (${sanitize(fp, 60)})` : ''}`
      : 'unknown host key';
    return new CliError('trust', `${what} (ssh: ${sanitize(words, 160)})`, {
      hint: 'check the fingerprint with your admin, then run again with --accept-new-host-key or pin it in the profile',
    });
  }
  if (/Permission denied \(|Too many authentication failures|no more authentication methods/i.test(text)) {
    const words = quote(/Permission denied|Too many authentication failures/) ?? 'Permission denied';
    return new CliError('auth', `${destination} refused authentication (ssh: ${sanitize(words, 120)})`, {
      hint: 'check that the bastion has your public key and that ssh-agent holds it (`ssh-add -l`); `ssh -v` shows what was offered',
    });
  }
  if (/forwarding failed|cannot listen to path|open failed/i.test(text)) {
    const words = quote(/forwarding failed|cannot listen|open failed/) ?? '';
    return new CliError('error', `ssh could not set up the forward (${sanitize(words, 120)})`, {
      hint: "check the bastion's AllowTcpForwarding and PermitOpen",
    });
  }
  const last =
    quote(
      /Connection refused|timed out|No route to host|Could not resolve hostname|Network is unreachable|Connection closed|Connection reset|kex_exchange_identification|Broken pipe|Name or service not known/i,
    ) ??
    lines.filter((l) => !/^Warning: Permanently added/.test(l)).at(-1) ??
    `ssh exited with status ${exitCode}`;
  return new CliError('error', `cannot reach the bastion ${destination} (ssh: ${sanitize(last, 140)})`, {
    hint: 'check the host and port, your network or VPN, and that the bastion is up; `ssh -v` gives details',
  });
}

const STDERR_LINES = 40;

/** Starts ssh and resolves once its forward listens; rejects with the CLI's error for what ssh said. */
export async function dialOpenSsh(o: OpenSshOptions): Promise<Transport> {
  const generated = await writeSshConfig(o);
  await rm(generated.socket, { force: true });
  // A control socket an ssh killed outright left behind: the new master would refuse to bind over it
  // ("already exists, disabling multiplexing", mux.c) and every hand-off would be refused.
  await rm(generated.control, { force: true });
  await rm(join(o.dir, 'seen'), { force: true });
  const args = sshArgs(o, generated);
  // ssh creates ~/.ssh only for its default file; a new key accepted here must have somewhere to go.
  if (o.acceptNew || o.interactive) await mkdir(join(o.home, '.ssh'), { recursive: true, mode: 0o700 });
  const knownBefore = await fileSize(userKnownHosts(o.home));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.env)) if (v !== undefined) env[k] = v;
  // ssh asks on /dev/tty itself; never an askpass program popping up out of sight.
  delete env['SSH_ASKPASS'];
  delete env['SSH_ASKPASS_REQUIRE'];
  const child: ChildProcess = spawn(o.ssh, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  const lines: string[] = [];
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split(/\r?\n/);
    partial = parts.pop() ?? '';
    if (partial.length > 4096) partial = partial.slice(-4096);
    for (const raw of parts) {
      const line = sanitize(raw, 300);
      if (!line) continue;
      lines.push(line);
      if (lines.length > STDERR_LINES) lines.shift();
      o.onStderr?.(line);
      if (/^Warning: Permanently added/.test(line)) o.info(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  const label = o.route.destination;
  const timeoutMs = o.readyTimeoutMs ?? (o.interactive ? 300_000 : 30_000);
  try {
    await waitForSocket(generated.socket, o.dir, exited, timeoutMs);
  } catch (err) {
    child.kill('SIGTERM');
    await exited;
    if (partial) lines.push(sanitize(partial, 300));
    if (err instanceof CliError) throw err;
    const failure = sshError(lines, label, child.exitCode, await seenKeys(o.dir));
    // OpenSSH's own banner for a changed key, as ssh prints it: the user should see its words.
    if (failure.kind === 'trust' && lines.some((l) => l.includes('REMOTE HOST IDENTIFICATION HAS CHANGED'))) {
      for (const l of lines)
        if (/^@|IT IS POSSIBLE|Someone could|It is also possible|fingerprint|Offending|known_hosts/.test(l))
          o.warn(l);
    }
    throw failure;
  }
  await reportAdded(o, knownBefore);
  const closed = exited.then(() => undefined);
  const adopted = new Set<ChildProcess>();
  const forwards = new Set<MuxForward>();
  let muxReady = false;
  let requestId = 0;
  /** Hand-offs whose control connection is not answered yet (at most the master's listen backlog). */
  let pending = 0;
  const controlReady = () => {
    if (!muxReady) {
      // ssh binds the control socket just after the forward's (ssh.c ssh_session2): until then, relay.
      try {
        muxReady = statSync(generated.control).isSocket();
      } catch {
        muxReady = false;
      }
    }
    return muxReady;
  };
  return {
    kind: 'openssh',
    closed,
    adopt: (socket, target) => {
      // ssh -W speaks host:port only; a Unix-socket target goes through open() and the relay.
      if ('socketPath' in target || targetLabel(target) !== targetLabel(o.target)) return undefined;
      if (!controlReady()) return undefined;
      if (muxAvailable()) {
        if (pending >= MAX_PENDING_HANDOFFS) return undefined;
        return handOff(o, generated.control, socket, target, ++requestId, forwards, {
          start: () => {
            pending += 1;
          },
          answered: () => {
            pending -= 1;
          },
        });
      }
      // No descriptor passing in this Node: an `ssh -W` process per connection, at most MAX_MUX_PROCESSES
      // at once; the others are relayed (one connect(2) each, no process).
      if (adopted.size >= MAX_MUX_PROCESSES) return undefined;
      return adoptConnection(o, generated, socket, target, adopted, env);
    },
    open: (target) => {
      if (targetLabel(target) !== targetLabel(o.target)) {
        return Promise.reject(
          new CliError('error', `this ssh forwards to ${targetLabel(o.target)}, not ${targetLabel(target)}`),
        );
      }
      return connectSocket(generated.socket, () => child.exitCode === null && child.signalCode === null);
    },
    close() {
      for (const f of forwards) f.close();
      for (const c of adopted) c.kill('SIGTERM');
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

/**
 * Hand-offs in flight at once: ssh's control socket listens with a backlog of 64 (mux.c muxserver_listen),
 * and a connect(2) beyond it fails at once (EAGAIN on a non-blocking Unix socket). A burst's connections
 * beyond this are relayed through the forward's socket instead of queued: for a short connection that is as
 * fast, and nothing waits.
 */
const MAX_PENDING_HANDOFFS = 48;
/** Without descriptor passing (openssh-mux.ts muxAvailable): `ssh -W` processes alive at once, at most. */
const MAX_MUX_PROCESSES = 8;

/**
 * One local connection handed to the master in-process (openssh-mux.ts: the mux protocol's stdio forward,
 * the socket's descriptor passed over the control socket): the master reads and writes the socket itself,
 * as `ssh -L` does. Resolves `true` when the forward has ended; `false` when the hand-off could not start
 * (the control socket refused or was busy) before anything of the connection was passed or read: the caller
 * relays it instead. Our own handle stays open (never read: the server accepted it paused) until then, so
 * the listener counts the connection as open.
 */
function handOff(
  o: OpenSshOptions,
  control: string,
  socket: Socket,
  target: { host: string; port: number },
  requestId: number,
  forwards: Set<MuxForward>,
  inFlight: { start(): void; answered(): void },
): Promise<boolean> {
  inFlight.start();
  const fwd = muxStdioForward(control, socket, target, requestId);
  forwards.add(fwd);
  let answered = false;
  const answer = () => {
    if (!answered) inFlight.answered();
    answered = true;
  };
  fwd.opened.then(answer, (err: unknown) => {
    answer();
    if (err instanceof MuxError && !err.passed) return;
    o.onStderr?.(`mux: ${sanitize(err instanceof Error ? err.message : String(err), 300)}`);
  });
  return fwd.ended.then(() => {
    answer();
    forwards.delete(fwd);
    return fwd.passed();
  });
}

/**
 * One local connection handed to the master: a mux client (`ssh -S CONTROL -W host:port`) whose stdin and
 * stdout are the accepted socket. It passes both descriptors to the master (mux.c
 * mux_client_request_stdio_fwd, SCM_RIGHTS), which then reads and writes the socket itself, as `ssh -L`
 * does; the client only waits for the channel to end. Our own handle stays open (never read: the server
 * accepted it paused) until then, so the listener counts the connection as open.
 */
function adoptConnection(
  o: OpenSshOptions,
  generated: GeneratedConfig,
  socket: Socket,
  target: { host: string; port: number },
  adopted: Set<ChildProcess>,
  env: Record<string, string>,
): Promise<boolean> {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const mux = spawn(
    o.ssh,
    [
      '-F',
      generated.configFile,
      '-S',
      generated.control,
      '-o',
      'ControlMaster=no',
      // The generated config's StdinNull would hand the master /dev/null instead of the socket.
      '-o',
      'StdinNull=no',
      '-W',
      `${host}:${target.port}`,
      '--',
      sshDestination(o.route.destination),
    ],
    { stdio: [socket, socket, 'pipe'], env },
  );
  adopted.add(mux);
  mux.stderr?.setEncoding('utf8');
  mux.stderr?.on('data', (chunk: string) => {
    for (const line of chunk.split(/\r?\n/)) if (line) o.onStderr?.(`mux: ${sanitize(line, 300)}`);
  });
  return new Promise((resolve) => {
    const done = () => {
      adopted.delete(mux);
      resolve(true);
    };
    mux.once('exit', done);
    mux.once('error', done);
  });
}

function userKnownHosts(home: string): string {
  return join(home, '.ssh', 'known_hosts');
}

async function fileSize(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.size,
    () => 0,
  );
}

/**
 * OpenSSH 9 logs "Permanently added" only at LogLevel VERBOSE: when ssh recorded a new key (known_hosts
 * grew during the dial), say which host and fingerprint, as the ssh2 transport does.
 */
async function reportAdded(o: OpenSshOptions, before: number): Promise<void> {
  const file = userKnownHosts(o.home);
  if ((await fileSize(file)) <= before) return;
  for (const s of await seenKeys(o.dir)) {
    if (o.pinned.includes(`${s.host}=${s.fingerprint}`)) continue;
    o.info(`Permanently added ${sanitize(s.host, 80)} (${s.fingerprint}) to ${file}.`);
    return;
  }
}

/** What the KnownHostsCommand helper saw: `host fingerprint` lines. */
async function seenKeys(dir: string): Promise<Array<{ host: string; fingerprint: string }>> {
  const text = await readFile(join(dir, 'seen'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .slice(-32)
    .map((l) => l.split(' '))
    .filter((f): f is [string, string] => f.length === 2 && /^SHA256:/.test(f[1] ?? ''))
    .map(([host, fingerprint]) => ({ host, fingerprint }));
}

/**
 * A connection to ssh's forward socket. Two refusals send nothing and are tried again, bounded by count and
 * time, as long as that ssh is running:
 * - ECONNREFUSED: ssh creates the socket with bind() and then listen() (OpenSSH misc.c unix_listener):
 *   waitForSocket sees the file after the bind, and a connect() before the listen() is refused. The first
 *   channel right after a dial (the TLS probe of an https upstream, the agent's shared tunnel, the first
 *   request after a re-dial) hit that window and was taken for a dead transport (openChannel then waits up
 *   to 20 s for a re-dial that never comes). On a loaded machine ssh can be off the CPU between the two
 *   calls for longer than a few retries, so they go on while ssh runs (a refusal from an ssh that has
 *   exited is final at once).
 * - EAGAIN: the listen backlog is full (ssh listens with 128, channels.c SSH_LISTEN_BACKLOG; a
 *   non-blocking Unix connect fails at once instead of waiting): a burst of `--raw` connections relayed
 *   at once. ssh accepts one per turn of its loop; the next try finds room.
 */
export async function connectSocket(path: string, running: () => boolean): Promise<Duplex> {
  const deadline = Date.now() + CONNECT_RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await new Promise<Duplex>((resolve, reject) => {
        const s = netConnect(path);
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const retry = (code === 'ECONNREFUSED' || code === 'EAGAIN') && running();
      if (!retry || attempt >= CONNECT_RETRIES || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.floor(Math.random() * 10)));
    }
  }
}

/** connectSocket's bounds: tries, and time since the first. */
const CONNECT_RETRIES = 1000;
const CONNECT_RETRY_MS = 10_000;

/**
 * Resolves when ssh's forward socket exists (ssh binds it only after authentication, and with
 * ExitOnForwardFailure exits if it cannot); rejects with undefined when ssh exits first, with a CliError on
 * the time limit. Woken by inotify on the private dir, with a slow poll as the backstop; bounded by time.
 */
function waitForSocket(
  socket: string,
  dir: string,
  exited: Promise<number | null>,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      watcher?.close();
      clearInterval(poll);
      clearTimeout(timer);
      if (err === undefined) resolve();
      else reject(err);
    };
    const check = () => {
      stat(socket).then(
        (s) => {
          if (s.isSocket()) finish();
        },
        () => undefined,
      );
    };
    let watcher: ReturnType<typeof watch> | undefined;
    try {
      watcher = watch(dir, () => check());
    } catch {
      watcher = undefined;
    }
    const poll = setInterval(check, 250);
    const timer = setTimeout(
      () =>
        finish(
          new CliError('error', `ssh did not finish connecting within ${Math.round(timeoutMs / 1000)} s`, {
            hint: 'check the bastion and your network; `ssh -v` gives details',
          }),
        ),
      timeoutMs,
    );
    exited.then(() => finish(new Error('ssh exited')));
    check();
  });
}

/** `ssh -G`: the options ssh would use for a destination, as a map of lower-case keys to values. */
export async function sshG(
  ssh: string,
  args: string[],
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs = 5000,
): Promise<Map<string, string[]>> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      ssh,
      ['-G', ...args],
      { env: env as NodeJS.ProcessEnv, timeout: timeoutMs, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new CliError(
              'usage',
              `ssh -G could not read the SSH configuration (${sanitize(stderr || err.message, 160)})`,
              {
                hint: 'check ~/.ssh/config; `ssh -G HOST` shows the error',
              },
            ),
          );
        else resolve(stdout);
      },
    );
  });
  const map = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(' ');
    if (i <= 0) continue;
    const key = line.slice(0, i).toLowerCase();
    const list = map.get(key) ?? [];
    list.push(line.slice(i + 1));
    map.set(key, list);
  }
  return map;
}
