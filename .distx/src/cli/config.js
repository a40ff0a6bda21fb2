import { DEFAULTS, parseProfileValue, readConfigFile, updateUserConfig, } from '../config/load.js';
import { PROFILE_KEYS, PROFILE_NAME } from '../config/schema.js';
import { CliError } from '../errors.js';
import { loadProfile } from './context.js';
import { Ui } from './ui.js';
function describe(source) {
    if (!source)
        return 'default';
    switch (source.kind) {
        case 'flag':
            return `flag ${source.detail}`;
        case 'env':
            return `env ${source.detail}`;
        case 'project':
            return `project file ${source.detail}`;
        case 'user':
            return `user file ${source.detail}`;
        default:
            return 'default';
    }
}
/** `mcp-secure config`: the effective profile, each value with where it came from. */
async function runShow(globals, deps) {
    const ui = await Ui.create(deps, globals);
    // `config` shows what an unapproved project file would set without asking: it is how the user reviews it.
    const eff = await loadProfile(deps, globals, undefined, { untrusted: 'ignore' });
    const keys = Object.keys(PROFILE_KEYS);
    if (globals.json) {
        ui.json({
            profile: eff.name,
            profile_source: describe(eff.nameSource),
            user_file: eff.userFile,
            project_file: eff.projectFile ?? null,
            project_keys_ignored: eff.ignored,
            values: Object.fromEntries(keys.map((k) => [k, { value: eff.profile[k] ?? null, source: describe(eff.sources[k]?.source) }])),
        });
        return 0;
    }
    const { c } = ui;
    ui.out(`${c.bold('Profile')} ${eff.name} ${c.dim(`(${describe(eff.nameSource)})`)}`);
    // Columns as wide as their widest cell (keys like host_key_fingerprints are longer than any fixed width),
    // measured before colouring: escape sequences take no room on the screen.
    const cells = keys.map((key) => {
        const value = eff.profile[key];
        const text = value === undefined ? '(not set)' : Array.isArray(value) ? value.join(' ') : String(value);
        return { key, text, unset: value === undefined };
    });
    const keyWidth = Math.max(...cells.map((r) => r.key.length));
    const textWidth = Math.max(...cells.map((r) => r.text.length));
    for (const { key, text, unset } of cells) {
        const shown = unset ? c.yellow(text) : text;
        ui.out(`  ${key.padEnd(keyWidth)}  ${shown}${' '.repeat(textWidth - text.length)}  ${c.dim(describe(eff.sources[key]?.source))}`);
    }
    ui.out(c.dim(`User file: ${eff.userFile}`));
    if (eff.projectFile)
        ui.out(c.dim(`Project file: ${eff.projectFile}`));
    if (eff.ignored.length > 0) {
        ui.warn(`not trusted yet, so ignored: ${eff.ignored.join(', ')} from ${eff.projectFile} (run a command such as \`mcp-secure status\` in a terminal to review and trust it)`);
    }
    if (!eff.defined && eff.name !== 'default') {
        ui.warn(`profile "${eff.name}" is not defined in any config file.`);
    }
    return 0;
}
async function targetProfile(globals, deps) {
    return (await loadProfile(deps, globals, undefined, { untrusted: 'ignore' })).name;
}
/** `mcp-secure config set KEY VALUE`: non-interactive, validated before anything is written. */
async function runSet(globals, key, text, deps) {
    const ui = await Ui.create(deps, globals);
    const value = parseProfileValue(key, text);
    const name = await targetProfile(globals, deps);
    const file = await updateUserConfig(deps.configDir, (config) => {
        const profile = config.profiles[name] ?? {};
        profile[key] = value;
        config.profiles[name] = profile;
    });
    ui.success(`Set ${key} for profile ${name} in ${file}.`);
    return 0;
}
async function runUnset(globals, key, deps) {
    const ui = await Ui.create(deps, globals);
    parseProfileValue(key, '');
    const name = await targetProfile(globals, deps);
    const file = await updateUserConfig(deps.configDir, (config) => {
        const profile = config.profiles[name];
        if (profile)
            delete profile[key];
    });
    ui.success(`Unset ${key} for profile ${name} in ${file}${key in DEFAULTS ? ' (the default applies)' : ''}.`);
    return 0;
}
async function runUse(globals, name, deps) {
    const ui = await Ui.create(deps, globals);
    if (!PROFILE_NAME.test(name)) {
        throw new CliError('usage', `invalid profile name "${name.slice(0, 64)}"`, {
            hint: 'use letters, digits, ".", "_" or "-"',
        });
    }
    const file = await updateUserConfig(deps.configDir, (config) => {
        if (!config.profiles[name]) {
            throw new CliError('usage', `no profile "${name}" in ${deps.configDir}`, {
                hint: `create it with \`mcp-secure config set issuer https://… --profile ${name}\``,
            });
        }
        config.default_profile = name;
    });
    ui.success(`Profile ${name} is now the default (${file}).`);
    return 0;
}
async function runList(globals, deps) {
    const ui = await Ui.create(deps, globals);
    const eff = await loadProfile(deps, globals, undefined, { untrusted: 'ignore' });
    const user = await readConfigFile(eff.userFile);
    const project = eff.projectFile ? await readConfigFile(eff.projectFile, 'project') : undefined;
    const rows = [
        ...Object.entries(user?.profiles ?? {}).map(([name, p]) => ({
            name,
            issuer: p.issuer ?? null,
            file: eff.userFile,
        })),
        ...Object.entries(project?.profiles ?? {}).map(([name, p]) => ({
            name,
            issuer: p.issuer ?? null,
            file: eff.projectFile,
        })),
    ];
    if (globals.json) {
        ui.json({ current: eff.name, profiles: rows });
        return 0;
    }
    if (rows.length === 0)
        ui.info('No profiles yet: create one with `mcp-secure config set issuer https://… --profile NAME`.');
    const nameWidth = Math.max(0, ...rows.map((r) => r.name.length));
    const issuerWidth = Math.max(0, ...rows.map((r) => (r.issuer ?? '(no issuer)').length));
    for (const r of rows) {
        ui.out(`${r.name === eff.name ? '*' : ' '} ${r.name.padEnd(nameWidth)}  ${(r.issuer ?? '(no issuer)').padEnd(issuerWidth)}  ${ui.c.dim(r.file ?? '')}`);
    }
    return 0;
}
/** `mcp-secure config …`: the validated options of commands/config.ts. */
export async function runConfig(globals, opts, deps) {
    switch (opts.action) {
        case 'show':
            return runShow(globals, deps);
        case 'set':
            return runSet(globals, opts.key, opts.value, deps);
        case 'unset':
            return runUnset(globals, opts.key, deps);
        case 'use':
            return runUse(globals, opts.profile, deps);
        case 'list':
            return runList(globals, deps);
    }
}
