/**
 * `mcp-secure audit verify --tenant acme`: is the audit log's current signed checkpoint consistent with
 * the one this profile verified last (RFC 9162 §2.1.4)? One checkpoint and one consistency proof, no
 * event streamed. The new checkpoint is remembered when it is.
 */
import { requireMcpUrl } from '../config/require.js';
import { CliError, sanitize } from '../errors.js';
import type { Deps } from '../io.js';
import { openControlPlane, textFetcher } from './audit.js';
import type { AuditVerifyOptions } from './commands/audit.js';
import { loadProfile } from './context.js';
import { CommandScope } from './scope.js';
import { type GlobalOptions, Ui } from './ui.js';

export async function run(globals: GlobalOptions, opts: AuditVerifyOptions, deps: Deps) {
  return runAuditVerify(globals, opts, deps);
}

export async function runAuditVerify(
  globals: GlobalOptions,
  opts: AuditVerifyOptions,
  deps: Deps,
): Promise<number> {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const mcpUrl = requireMcpUrl(eff);
  const scope = new CommandScope(deps.signal);
  const { cleanups } = scope;
  try {
    const request = await openControlPlane({
      ui,
      deps,
      eff,
      tenant: opts.tenant,
      acceptNewHostKey: opts.acceptNewHostKey,
      sshTransport: opts.sshTransport,
      signal: scope.signal,
      cleanups,
    });
    const get = textFetcher(request, mcpUrl, scope.signal);
    const [{ setupLog, CHAIN_ONLY }, { describeLogProblem }, { writeLogState }] = await Promise.all([
      import('./audit-log.js'),
      import('../audit/transparency.js'),
      import('../audit/log-state.js'),
    ]);
    const log = await setupLog({
      get,
      deps,
      ui,
      eff,
      tenant: opts.tenant,
      acceptNewLogKey: opts.acceptNewLogKey,
    });
    const at = (ms: number) => new Date(ms).toISOString();
    if (globals.json) {
      const base = { tenant: opts.tenant };
      if (log.mode === 'chain-only')
        ui.json({ ...base, verified: false, mode: 'chain-only', why: CHAIN_ONLY });
      else
        ui.json({
          ...base,
          verified: log.problems.length === 0 && log.checkpoint !== undefined,
          mode: 'log',
          checkpoint: log.checkpoint
            ? { size: log.checkpoint.size, root: log.checkpoint.root.toString('base64') }
            : null,
          remembered: log.remembered
            ? { size: log.remembered.size, verified_at: at(log.remembered.verifiedAt) }
            : null,
          problems: log.problems.map((p) => sanitize(describeLogProblem(p), 400)),
        });
    }
    if (log.mode === 'chain-only') {
      ui.warn(`${CHAIN_ONLY} (${log.why})`);
      return 0;
    }
    for (const p of log.problems) {
      deps.stderr.write(
        `${ui.c.red.bold('✗ AUDIT LOG:')} ${ui.c.red(sanitize(describeLogProblem(p), 400))}\n`,
      );
    }
    const cp = log.checkpoint;
    if (log.problems.length > 0 || !cp) {
      throw new CliError('trust', `the audit log of ${opts.tenant} failed verification`, {
        hint: "keep the evidence in the state directory and report it to the control plane's security team",
      });
    }
    const rem = log.remembered;
    // The prefix's block roots stay valid: the new tree extends the old one.
    await writeLogState(deps.configDir, eff.name, opts.tenant, {
      origin: log.origin,
      vkey: log.key.text,
      note: cp.note,
      size: cp.size,
      root: cp.root,
      verifiedAt: deps.now(),
      frontier: rem && rem.size === cp.size ? rem.frontier : [],
      blockHeight: rem?.blockHeight ?? 0,
      blocks: rem?.blocks ?? [],
    });
    ui.success(
      rem
        ? `audit log of ${opts.tenant}: checkpoint of ${cp.size} events signed by ${sanitize(log.key.name, 100)}, consistent with the ${rem.size} verified at ${at(rem.verifiedAt)}`
        : `audit log of ${opts.tenant}: checkpoint of ${cp.size} events signed by ${sanitize(log.key.name, 100)}; remembered (first contact: nothing to compare with yet)`,
    );
    return 0;
  } finally {
    await scope.close('done');
  }
}
