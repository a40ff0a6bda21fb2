/**
 * The tunnel `connect` and `audit tail` share: a tenant token kept fresh in memory and the SSH chain kept
 * up by the supervisor. `connect` adds a listener; `audit tail` makes its own requests through it.
 */
import { join } from 'node:path';
import type { Role } from '../auth/tenant.js';
import type { EffectiveProfile } from '../config/load.js';
import type { Deps } from '../io.js';
import type { Hop } from '../tunnel/ssh.js';
import type { Transport, TransportChoice, TransportKind } from '../tunnel/transport.js';
import type { Ui } from './ui.js';

export interface OpenTunnelOptions {
  ui: Ui;
  deps: Deps;
  eff: EffectiveProfile;
  tenant: string;
  role: Role;
  acceptNewHostKey: boolean;
  hops: Hop[];
  /** `--ssh-transport`; the profile's ssh_transport, else auto (OpenSSH where `ssh` is installed). */
  transport?: TransportChoice | undefined;
  /** The upstream URL: what the OpenSSH transport forwards to. */
  upstream: URL;
  signal: AbortSignal;
  /** NDJSON events (`--json`). */
  event(type: string, data?: Record<string, unknown>): void;
  /** True when events go to stdout as NDJSON: then state changes are also logged on stderr. */
  quietEvents: boolean;
  /** Where to register what must be closed when the session ends. */
  cleanups: Array<() => unknown>;
  /**
   * False when stdin is not the user's (the stdio MCP mode: it carries JSON-RPC): never ask on the
   * terminal then — no host-key question, passphrase or 2FA prompt — even where one is attached.
   */
  interactive?: boolean;
  /**
   * TLS to an https:// upstream (upstream-tls.ts): the CA, the client certificate and, where the IdP binds
   * tokens to it, the certificate-bound tenant token. Absent: no TLS layer here (`connect --raw`).
   */
  tls?: { unsafeSkipVerify: boolean } | undefined;
}

export function mmss(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export async function openTunnel(o: OpenTunnelOptions) {
  const { ui, deps, eff, hops, signal, event, cleanups } = o;
  const json = o.quietEvents;
  const opts = { tenant: o.tenant, role: o.role, acceptNewHostKey: o.acceptNewHostKey };
  const [
    { openAgentSession, obtainTenantToken, proofSigner, stepUp },
    { TenantRefresher },
    { recordTenantToken },
  ] = await Promise.all([
    import('../auth/tenant-access.js'),
    import('../auth/tenant-refresher.js'),
    import('../auth/tenant-state.js'),
  ]);
  const manager = { deps, eff, ui, debug: ui.opts.debug };
  let renewCertificate: (() => Promise<void>) | undefined;
  let step = ui.waiting(`Getting a tenant token for ${opts.tenant}…`);
  // One connection to the agent for the whole session: tenant tokens and DPoP proofs come over it; the
  // refresh token and the key stay there. It closes with the session.
  const session = await openAgentSession(manager);
  cleanups.push(() => session.agent.close());
  const elevated = opts.role === 'admin' ? await stepUp(session, manager) : undefined;
  // Made now (it signs nothing until asked): the client-certificate endpoint may need a proof for the first
  // token, before the proxy's first request.
  const signer = proofSigner(session, deps.now);
  // The token for the endpoints that issue certificates: with a certificate-bound token, the plain one of
  // the same exchange (they are reached without a client certificate; RFC 8705 §3 binds the other).
  const issuanceToken = () => {
    const t = refresher.current();
    const u = t?.issuance ?? t;
    return u && u.expiresAt > deps.now() ? { value: u.token, type: u.tokenType } : undefined;
  };
  const { upstreamTls } = await import('./upstream-tls.js');
  const tlsSetup = o.tls
    ? await upstreamTls({
        eff,
        deps,
        ui,
        upstream: o.upstream,
        unsafeSkipVerify: o.tls.unsafeSkipVerify,
        token: () => {
          const t = refresher.current();
          return t ? { value: t.token, type: t.tokenType } : undefined;
        },
        issuanceToken,
        proof: signer,
      })
    : undefined;
  const binder = tlsSetup?.client;
  const request = { tenant: opts.tenant, role: opts.role, ...(elevated ? { elevation: elevated } : {}) };
  const refresher = new TenantRefresher({
    obtain: async () => {
      let t = await obtainTenantToken(session, request, manager);
      ui.addSecret(t.token);
      if (binder && t.certBinding) {
        // RFC 8705 §3: the IdP binds tokens to the client certificate presented at its mTLS token endpoint.
        // The certificate is obtained with the plain token first (a client has none before), then the same
        // exchange again over mTLS presenting it; the proxy presents that certificate with that token, and
        // the MCP server refuses the token over any other connection. DPoP still binds both tokens.
        const issuance = t;
        const id = await binder.forBinding({ value: issuance.token, type: issuance.tokenType });
        const bound = await obtainTenantToken(
          session,
          { ...request, clientCert: { cert: id.certPem, key: id.keyPem } },
          manager,
        );
        ui.addSecret(bound.token);
        binder.pin(id);
        // Renewed before the certificate ends too: the token is worthless without it.
        t = { ...bound, expiresAt: Math.min(bound.expiresAt, id.notAfter), issuance };
      }
      await recordTenantToken(deps.configDir, eff.name, t).catch(() => undefined);
      return t;
    },
    now: deps.now,
    sleep: deps.sleep,
    random: Math.random,
    signal,
    onEvent: (e) => {
      if (e.type === 'refreshed') {
        event('token_refreshed', { expires_at: new Date(e.token.expiresAt).toISOString() });
        // The certificate lasts as long as the token: a new token, a new certificate (agent.ts).
        void renewCertificate?.();
        if (!deps.stderrIsTTY && !json)
          ui.info(`tenant token renewed; expires ${new Date(e.token.expiresAt).toISOString()}`);
      } else if (e.type === 'retry') {
        event('token_retry', { attempt: e.attempt, delay_ms: e.delayMs });
        ui.debug(
          `token refresh failed (${e.error instanceof Error ? e.error.message : String(e.error)}); retrying in ${e.delayMs} ms`,
        );
      } else if (e.type === 'expired') {
        event('token_expired');
        ui.warn(
          'the tenant token has expired and the IdP is unreachable; requests get 503 until it is renewed',
        );
      }
    },
  });
  // The tenant token and the SSH connection do not depend on each other (except for an SSH certificate,
  // which is issued for the token): both start now, and connect is ready when the slower is.
  const tokenStep = step;
  const tokenStarted = refresher.start().finally(() => tokenStep.stop());
  // Until it is awaited below, a failure must not count as unhandled.
  tokenStarted.catch(() => undefined);
  let tokenReported = false;
  const tokenReady = async () => {
    const t = await tokenStarted;
    if (!tokenReported) {
      tokenReported = true;
      ui.success(
        `Tenant token for ${opts.tenant} (${t.roles.join(', ')}), expires in ${mmss(t.expiresAt - deps.now())}`,
      );
      if (t.x5t) ui.info('Tenant token bound to the client certificate (RFC 8705 cnf.x5t#S256)');
    }
    return t;
  };
  // The proof signer is for DPoP-bound tokens; which kind the IdP issues is known with the first token.
  let proof: ReturnType<typeof proofSigner> | undefined;
  const proofFor = async () => {
    const t = await tokenReady();
    if (t.tokenType === 'DPoP') proof ??= signer;
    return proof;
  };

  // ssh2 (a large module) is loaded only for the ssh2 transport: the OpenSSH transport never needs it.
  const [{ Supervisor }, { hopLabel }] = await Promise.all([
    import('../tunnel/supervisor.js'),
    import('../tunnel/transport.js'),
  ]);
  const home = deps.homedir;
  const knownHosts = join(home, '.ssh', 'known_hosts');
  const canAsk = o.interactive !== false && deps.stdinIsTTY && deps.stderrIsTTY;
  const chosen = await chooseTransport(o.transport ?? eff.profile.ssh_transport ?? 'auto', deps.env);
  ui.debug(`SSH transport: ${chosen.kind} (${chosen.why})`);
  let routeLabel = hops.map(hopLabel).join(' → ');
  let dial: () => Promise<Transport>;
  const caEndpoint = eff.profile.ssh_ca_endpoint;
  if (caEndpoint && chosen.kind !== 'openssh') {
    const { CliError } = await import('../errors.js');
    throw new CliError(
      'usage',
      'ssh_ca_endpoint (a short-lived SSH certificate) needs the OpenSSH transport: ssh2 cannot offer OpenSSH certificates',
      {
        hint: 'install openssh-client and use --ssh-transport openssh, or unset ssh_ca_endpoint to use your own key',
      },
    );
  }
  if (chosen.kind === 'openssh') {
    const { dialOpenSsh, privateDir } = await import('../tunnel/openssh.js');
    const { targetOf } = await import('../tunnel/transport.js');
    const dir = await privateDir(deps.env);
    cleanups.push(() => dir.remove());
    let agent: { socket: string; publicKeyFile: string } | undefined;
    let identity: import('../tunnel/agent.js').SessionIdentity | undefined;
    let writeCert: ((c: import('../tunnel/agent.js').CertificateInfo) => Promise<void>) | undefined;
    if (caEndpoint) {
      // No SSH key on disk (agent.ts): an in-memory key, a certificate from the control plane's CA for
      // as long as the tenant token lasts, served by our own agent to this session's ssh only.
      const [{ SessionIdentity, serveAgent }, { requestSshCertificate }, { writeFile }] = await Promise.all([
        import('../tunnel/agent.js'),
        import('../auth/ssh-ca.js'),
        import('node:fs/promises'),
      ]);
      const sessionIdentity = new SessionIdentity({
        now: deps.now,
        certify: async (publicKeyLine) => {
          // The first certificate waits for the first token; later ones use the current one.
          await tokenReady();
          const t = issuanceToken();
          if (!t) {
            const { CliError } = await import('../errors.js');
            throw new CliError('error', 'the tenant token has expired and is being renewed');
          }
          return requestSshCertificate({
            endpoint: caEndpoint,
            publicKeyLine,
            token: t,
            proof: async (method, url, token) => {
              const sign = await proofFor();
              if (!sign) throw new Error('the tenant token is DPoP-bound but the login has no DPoP key');
              return sign(method, url, token);
            },
            fetch: deps.fetch,
            insecureHttp: eff.profile.insecure_http,
          });
        },
      });
      identity = sessionIdentity;
      const served = await serveAgent(sessionIdentity, join(dir.path, 'agent.sock'));
      cleanups.push(() => served.close());
      // The certificate (public; its key stays in memory): with IdentitiesOnly, ssh offers only the agent
      // identity that matches an IdentityFile, and a plain public key there would select the bare key, which
      // sshd does not know. Rewritten before each dial, as the certificate is renewed.
      const publicKeyFile = join(dir.path, 'session-cert.pub');
      writeCert = (c) => writeFile(publicKeyFile, `${c.line}\n`, { mode: 0o600 });
      agent = { socket: served.socket, publicKeyFile };
      renewCertificate = () =>
        sessionIdentity.fresh(Number.POSITIVE_INFINITY).then(
          (c) => {
            event('ssh_certificate', { valid_before: new Date(c.validBeforeMs).toISOString() });
            ui.debug(`SSH certificate renewed; valid until ${new Date(c.validBeforeMs).toISOString()}`);
          },
          (err: unknown) =>
            ui.debug(
              `SSH certificate renewal failed (${err instanceof Error ? err.message : String(err)}); retried at the next dial`,
            ),
        );
    }
    const bastion = eff.profile.bastion ?? '';
    const jumps = eff.profile.jump;
    routeLabel = [...(jumps ?? []), bastion].join(' → ');
    const sshPath = chosen.ssh;
    dial = async () => {
      // The token's line first: on a terminal, ssh may prompt next (a spinner would draw over the prompt).
      if (canAsk) await tokenReady().catch(() => undefined);
      step.stop();
      // On a terminal ssh may ask there (a host key, a passphrase, a 2FA code): no spinner over its prompt.
      if (canAsk) ui.info(`SSH (OpenSSH): connecting to ${routeLabel}…`);
      else step = ui.waiting(`SSH (OpenSSH): connecting to ${routeLabel}…`);
      if (identity) {
        const cert = await identity.fresh();
        await writeCert?.(cert);
        ui.debug(
          `SSH certificate for ${cert.principals.join(', ')} until ${new Date(cert.validBeforeMs).toISOString()}`,
        );
      }
      return dialOpenSsh({
        ssh: sshPath,
        route: { destination: bastion, jumps },
        target: targetOf(o.upstream),
        dir: dir.path,
        home,
        identityFile: eff.profile.identity_file?.replace(/^~(?=\/|$)/, home),
        pinned: eff.profile.host_key_fingerprints ?? [],
        acceptNew: opts.acceptNewHostKey,
        interactive: canAsk,
        ...(agent ? { agent } : {}),
        env: deps.env,
        onStderr: (line) => ui.debug(`ssh: ${line}`),
        info: (line) => ui.info(line),
        warn: (line) => ui.warn(line),
      }).finally(() => step.stop());
    };
  } else
    dial = async () => {
      if (canAsk) await tokenReady().catch(() => undefined);
      const { dialChain } = await import('../tunnel/ssh.js');
      return dialChain({
        hops,
        // OpenSSH's defaults (ssh_config(5) UserKnownHostsFile, GlobalKnownHostsFile).
        knownHostsFiles: [
          knownHosts,
          `${knownHosts}2`,
          '/etc/ssh/ssh_known_hosts',
          '/etc/ssh/ssh_known_hosts2',
        ],
        knownHostsWrite: knownHosts,
        pinned: eff.profile.host_key_fingerprints ?? [],
        acceptNew: opts.acceptNewHostKey,
        ...(canAsk
          ? {
              // The spinner stops first: its next frame would erase the question from the line.
              confirm: async (q: string) => {
                step.stop();
                return /^y(es)?$/i.test((await deps.prompt(q)).trim());
              },
              passphrase: (file: string) => {
                step.stop();
                return deps.prompt(`Passphrase for ${file}: `, { secret: true });
              },
            }
          : {}),
        agentSocket: deps.env['SSH_AUTH_SOCK'],
        onHop: (hop, i) => {
          step.stop();
          step = ui.waiting(`SSH: connecting to ${hopLabel(hop)} (${i + 1}/${hops.length})…`);
        },
        info: (line) => ui.info(line),
        warn: (line) => ui.warn(line),
      }).finally(() => step.stop());
    };

  let redialling = false;
  const supervisor = new Supervisor({
    dial,
    sleep: deps.sleep,
    random: Math.random,
    signal,
    onEvent: (e) => {
      if (e.type === 'down') {
        redialling = true;
        event('tunnel_down', { reason: e.reason, transport: chosen.kind });
        if (!deps.stderrIsTTY || json) ui.warn(`SSH connection lost (${e.reason}); re-dialling`);
      } else if (e.type === 'up' && redialling) {
        redialling = false;
        event('tunnel_up', { redials: e.redials, transport: chosen.kind });
        if (!deps.stderrIsTTY || json) ui.info(`SSH connection re-established (re-dials: ${e.redials})`);
      } else if (e.type === 'redial') {
        event('redial_failed', { attempt: e.attempt, delay_ms: e.delayMs });
        ui.debug(`re-dial ${e.attempt} failed (${e.error}); next in ${e.delayMs} ms`);
      }
    },
  });
  cleanups.push(() => supervisor.close());
  const sshStarted = supervisor.start();
  sshStarted.catch(() => undefined);
  // A token failure is reported first (as when the two ran one after the other); the dial then stops
  // with the session (cleanups).
  const first = await tokenReady();
  await proofFor();
  await sshStarted;
  ui.success(
    `SSH: ${routeLabel} (host keys verified; ${chosen.kind === 'openssh' ? 'OpenSSH' : 'ssh2'} transport)`,
  );

  const stats = { open: 0, total: 0, refused: 0, bytesIn: 0, bytesOut: 0, lastActivity: deps.now() };
  return { session, refresher, supervisor, proof, first, stats, transport: chosen.kind, tls: tlsSetup };
}

export type ChosenTransport = { kind: 'openssh'; ssh: string; why: string } | { kind: 'ssh2'; why: string };

/**
 * Which SSH transport: OpenSSH wherever `ssh` is installed (it behaves exactly like the user's `ssh`),
 * ssh2 in-process where it is not or when chosen. Choosing OpenSSH where there is none is an error, not a
 * silent fallback.
 */
export async function chooseTransport(
  choice: TransportChoice,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ChosenTransport> {
  if (choice === 'ssh2') return { kind: 'ssh2', why: 'chosen (ssh_transport / --ssh-transport ssh2)' };
  const { findSsh } = await import('../tunnel/openssh.js');
  const ssh = await findSsh(env);
  if (ssh) {
    return {
      kind: 'openssh',
      ssh,
      why: choice === 'openssh' ? `chosen; ${ssh}` : `${ssh} is installed`,
    };
  }
  if (choice === 'openssh') {
    const { CliError } = await import('../errors.js');
    throw new CliError('usage', 'the OpenSSH transport was chosen but no `ssh` is on PATH', {
      hint: 'install openssh-client, or use --ssh-transport ssh2',
    });
  }
  return { kind: 'ssh2', why: 'no `ssh` on PATH; the in-process ssh2 client' };
}

export type { TransportKind };
