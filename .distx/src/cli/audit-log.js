/**
 * The transparency-log side of `audit tail` and `audit verify` (docs/protocol.md §5): the pinned verifier
 * key (asked for on first contact, like an SSH host key), the signed checkpoint, and its consistency with
 * the one remembered from the last run. Server text reaches the terminal only through `sanitize`.
 */
import { parseVerifierKey, verifyCheckpoint, } from '../audit/checkpoint.js';
import { readLogState, writeForkEvidence } from '../audit/log-state.js';
import { checkExtends, fetchCheckpoint } from '../audit/transparency.js';
import { CliError, sanitize } from '../errors.js';
export const CHAIN_ONLY = 'chain only: a rewrite between runs cannot be detected';
export async function setupLog(o) {
    const { deps, ui, eff } = o;
    const pinned = eff.profile.audit_log_key;
    // The metadata only offers a key on first contact; with a pin, the checkpoint is asked for directly
    // (one round trip less for `audit verify`).
    const meta = pinned === undefined ? await o.get('/audit/log') : await o.get('/audit/checkpoint');
    if (meta.status === 404 && pinned === undefined) {
        return { mode: 'chain-only', why: 'the control plane publishes no signed log' };
    }
    if (meta.status !== 200 && meta.status !== 404)
        throw new CliError('error', `the audit log answered HTTP ${meta.status}`, {
            hint: 'try again; if it persists, ask the control plane operators',
        });
    let offered;
    if (pinned === undefined) {
        try {
            const v = JSON.parse(meta.body);
            offered = typeof v['verifier_key'] === 'string' ? v['verifier_key'] : undefined;
        }
        catch {
            offered = undefined;
        }
    }
    let key;
    if (pinned !== undefined) {
        const k = parseVerifierKey(pinned);
        if (typeof k === 'string') {
            throw new CliError('usage', `the pinned audit_log_key is not a verifier key (${k})`, {
                hint: 'ask your admin for the log key and run `mcp-secure config set audit_log_key "NAME+ID+KEY"`',
            });
        }
        key = k;
    }
    else {
        const k = offered === undefined ? 'no verifier_key' : parseVerifierKey(offered);
        if (typeof k === 'string') {
            throw new CliError('trust', `the control plane's audit log key is unusable (${sanitize(k, 80)})`, {
                hint: "report it to the control plane's operators",
            });
        }
        const shown = sanitize(k.text, 300);
        let yes = o.acceptNewLogKey;
        if (!yes && deps.stdinIsTTY && deps.stderrIsTTY) {
            ui.info(`The audit log of profile ${eff.name} is signed by a key not pinned yet:\n  ${shown}`);
            const answer = await deps.prompt('Check it with your admin. Pin it and trust checkpoints it signs? [y/N] ');
            yes = /^y(es)?$/i.test(answer.trim());
        }
        if (!yes) {
            throw new CliError('trust', `the audit log key of profile ${eff.name} is not pinned: ${shown}`, {
                hint: `check it with your admin, then run \`mcp-secure config set audit_log_key "${shown}"\` or run again with --accept-new-log-key`,
            });
        }
        const { updateUserConfig } = await import('../config/load.js');
        const file = await updateUserConfig(deps.configDir, (config) => {
            config.profiles[eff.name] = { ...config.profiles[eff.name], audit_log_key: k.text };
        });
        ui.success(`audit log key pinned in ${file}: ${shown}`);
        key = k;
    }
    const origin = `${key.name}/${o.tenant}`;
    const problems = [];
    let remembered = await readLogState(deps.configDir, eff.name, o.tenant);
    if (meta.status === 404) {
        // A pinned key and no log: never a silent fall back to the weaker guarantee.
        problems.push({ kind: 'absent' });
        return { mode: 'log', key, origin, remembered, checkpoint: undefined, problems };
    }
    if (remembered && (remembered.vkey !== key.text || remembered.origin !== origin)) {
        ui.warn('the pinned audit log key changed since the last verified checkpoint: starting a new record');
        remembered = undefined;
    }
    const got = pinned === undefined
        ? await fetchCheckpoint(o.get, key, origin)
        : ((c) => ('kind' in c ? { kind: 'checkpoint', failure: c } : c))(verifyCheckpoint(meta.body, key, origin));
    if ('kind' in got) {
        problems.push(got);
        return { mode: 'log', key, origin, remembered, checkpoint: undefined, problems };
    }
    if (remembered) {
        const p = await checkExtends(o.get, remembered, got);
        if (p?.kind === 'fork') {
            p.evidence = await writeForkEvidence(deps.configDir, eff.name, o.tenant, {
                remembered: remembered.note,
                received: got.note,
                at: deps.now(),
            });
        }
        if (p)
            problems.push(p);
    }
    return { mode: 'log', key, origin, remembered, checkpoint: got, problems };
}
/** Reads a response body as text, at most `max` bytes (a hostile server cannot make it grow). */
export async function readBounded(res, max = 64 * 1024) {
    const chunks = [];
    let size = 0;
    for await (const chunk of res) {
        size += chunk.length;
        if (size > max) {
            res.destroy();
            throw new CliError('error', `an audit log answer is larger than ${max} bytes`, {
                hint: "report it to the control plane's operators",
            });
        }
        chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
}
