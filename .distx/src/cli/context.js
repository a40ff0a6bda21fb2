/** Shared start of every command: the effective profile, and the Ui. */
import { loadEffectiveProfile, tightenConfigDir, } from '../config/load.js';
import { sanitize } from '../errors.js';
import { NO_FLAGS } from './commands/shared.js';
export { profileFlags } from './commands/shared.js';
/**
 * The trust prompt for a project file that sets trust-moving keys, in the spirit of direnv's `allow`: shows
 * what the file would decide (values sanitized: they come from the repository), and a yes is for this exact
 * file only (its hash is recorded; a change asks again). Default no.
 */
export async function askProjectTrust(deps, q) {
    const w = (line) => deps.stderr.write(`${line}\n`);
    w(`${sanitize(q.file, 300)} ${q.changed ? 'has CHANGED since you trusted it and' : 'is new here and'} sets what only your own config should:`);
    for (const { key, value } of q.keys) {
        w(`  ${key} = ${sanitize(Array.isArray(value) ? value.join(' ') : JSON.stringify(value), 160)}`);
    }
    w('These decide where your tokens, keys and connections go. Say yes only if you trust everyone who can');
    w('write to this repository; your answer is recorded for this exact file content.');
    const answer = await deps.prompt('Trust this project file? [y/N] ');
    return /^y(es)?$/i.test(answer.trim());
}
export async function loadProfile(deps, globals, flags = NO_FLAGS, options = {}) {
    const dir = await tightenConfigDir(deps.configDir, deps.platform);
    if (dir.status === 'tightened') {
        deps.stderr.write(`warning: ${sanitize(deps.configDir, 300)} was readable by others (mode 0${dir.from.toString(8)}); made it 0700, as it must be\n`);
    }
    // Asked only with a person at a terminal to answer; a script or an MCP client spawning us gets the error.
    const canAsk = deps.stdinIsTTY && deps.stderrIsTTY;
    return loadEffectiveProfile({
        configDir: deps.configDir,
        cwd: deps.cwd,
        env: deps.env,
        profileFlag: globals.profile,
        flags: flags.values,
        flagNames: flags.names,
        ...(canAsk ? { confirmProject: (q) => askProjectTrust(deps, q) } : {}),
        ...(options.untrusted ? { untrusted: options.untrusted } : {}),
    });
}
export { requireIdp } from '../config/require.js';
