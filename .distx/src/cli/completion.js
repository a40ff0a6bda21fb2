/**
 * Shell completion the way gh and cobra do it: a small script per shell that, on <Tab>, asks the CLI
 * itself (`mcp-secure __complete WORDS… CURRENT`) for candidates. Commands and flags come from the
 * commander program, so they can never drift from the real ones; profile names come from the config
 * files and tenants from the profile's recorded tenant sessions.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readConfigFile } from '../config/load.js';
import { PROJECT_CONFIG_FILE, USER_CONFIG_FILE } from '../config/paths.js';
import { SHELLS } from './commands/completion.js';
export { SHELLS };
/** Quietly best-effort: a broken config file must not make <Tab> print errors into the command line. */
async function profileNames(deps) {
    const names = new Set();
    for (const file of [join(deps.configDir, USER_CONFIG_FILE), join(deps.cwd, PROJECT_CONFIG_FILE)]) {
        const config = await readConfigFile(file).catch(() => undefined);
        for (const name of Object.keys(config?.profiles ?? {}))
            names.add(name);
    }
    return [...names].sort();
}
/** Tenants this profile has had tokens for (state/<profile>.tenants.json holds no secret). */
async function tenantNames(deps, profile) {
    const { readTenantState } = await import('../auth/tenant-state.js');
    const names = new Set();
    const profiles = profile
        ? [profile]
        : await readdir(join(deps.configDir, 'state')).then((files) => files.filter((f) => f.endsWith('.tenants.json')).map((f) => f.slice(0, -'.tenants.json'.length)), () => []);
    for (const p of profiles.slice(0, 64)) {
        for (const t of Object.keys(await readTenantState(deps.configDir, p)))
            names.add(t);
    }
    return [...names].sort();
}
function optionNames(cmd) {
    return cmd.options
        .filter((o) => !o.hidden)
        .flatMap((o) => [o.long, o.short].filter((n) => Boolean(n)));
}
function findOption(cmds, flag) {
    for (const c of [...cmds].reverse()) {
        const o = c.options.find((opt) => opt.long === flag || opt.short === flag);
        if (o)
            return o;
    }
    return undefined;
}
/**
 * Candidates for the last word of `words` (the one being typed; may be ""), given the words before it.
 * Filtering by prefix is left to the shell, except that we only offer flags for a word starting with "-".
 */
export async function complete(program, words, deps, profileFlag) {
    const current = words[words.length - 1] ?? '';
    const before = words.slice(0, -1);
    const path = [program];
    let profile = profileFlag ?? deps.env['MCP_SECURE_PROFILE'];
    let expecting;
    for (const word of before) {
        if (expecting) {
            if (expecting.long === '--profile')
                profile = word;
            expecting = undefined;
            continue;
        }
        if (word.startsWith('-')) {
            const option = findOption(path, word.split('=')[0]);
            if (option && (option.required || option.optional) && !word.includes('='))
                expecting = option;
            continue;
        }
        const here = path[path.length - 1];
        const sub = here.commands.find((c) => c.name() === word || c.aliases().includes(word));
        if (sub && sub.name() !== '__complete')
            path.push(sub);
    }
    const cmd = path[path.length - 1];
    if (expecting) {
        if (expecting.long === '--profile')
            return profileNames(deps);
        if (expecting.long === '--tenant')
            return tenantNames(deps, profile);
        if (expecting.argChoices)
            return [...expecting.argChoices];
        return [];
    }
    if (current.startsWith('-')) {
        const flags = new Set();
        for (const c of path)
            for (const n of optionNames(c))
                flags.add(n);
        flags.add('--help');
        return [...flags].filter((f) => f.startsWith('--') || current.length <= 2);
    }
    const subs = cmd.commands.filter((c) => c.name() !== '__complete').map((c) => c.name());
    if (subs.length > 0)
        return subs;
    // Positional arguments.
    const names = path.map((c) => c.name()).join(' ');
    if (names.endsWith('config use'))
        return profileNames(deps);
    if (names.endsWith('config set') || names.endsWith('config unset')) {
        const { PROFILE_KEYS } = await import('../config/schema.js');
        const args = before.filter((w) => !w.startsWith('-'));
        // Only the key is completed; values are the user's.
        return args[args.length - 1] === 'set' || args[args.length - 1] === 'unset'
            ? Object.keys(PROFILE_KEYS)
            : [];
    }
    const arg = cmd.registeredArguments[0];
    return arg?.argChoices ? [...arg.argChoices] : [];
}
/** The scripts: each passes the words typed so far to `__complete` and offers what comes back. */
export function script(shell, bin = 'mcp-secure') {
    switch (shell) {
        case 'bash':
            return `# bash completion for ${bin}; install: ${bin} completion bash > ~/.local/share/bash-completion/completions/${bin}
_${fn(bin)}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local IFS=$'\\n'
  COMPREPLY=($(compgen -W "$(${bin} __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "$cur"))
}
complete -o default -F _${fn(bin)} ${bin}
`;
        case 'zsh':
            return `#compdef ${bin}
# zsh completion for ${bin}; install: ${bin} completion zsh > ~/.zfunc/_${bin}
# with fpath+=(~/.zfunc) before compinit in ~/.zshrc; or source it after compinit.
_${fn(bin)}() {
  local -a candidates
  candidates=(\${(f)"$(${bin} __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)"})
  compadd -a candidates
}
# Autoloaded from fpath, this file runs as the function _${bin}: complete now. Sourced: register.
if [[ "$funcstack[1]" = "_${bin}" ]]; then _${fn(bin)} "$@"; else compdef _${fn(bin)} ${bin}; fi
`;
        case 'fish':
            return `# fish completion for ${bin}; install: ${bin} completion fish > ~/.config/fish/completions/${bin}.fish
function __${fn(bin)}_complete
  set -l words (commandline -opc)
  ${bin} __complete $words[2..-1] (commandline -ct) 2>/dev/null
end
complete -c ${bin} -f -a '(__${fn(bin)}_complete)'
`;
    }
}
function fn(bin) {
    return bin.replace(/[^A-Za-z0-9_]/g, '_');
}
export async function runCompletion(_globals, opts, deps) {
    deps.stdout.write(script(opts.shell));
    return 0;
}
