/**
 * The effective profile, and where each value came from. Precedence: flags > environment > project file
 * (`.mcp-secure.json` in the working directory or a parent) > user file (`config.json` in the config dir).
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, parse as parsePath } from 'node:path';
import { CliError } from '../errors.js';
import { PROJECT_CONFIG_FILE, USER_CONFIG_FILE } from './paths.js';
import { isProfileKey, PROFILE_KEYS, PROFILE_NAME, PROJECT_SAFE_KEYS, projectForbidden, validateConfigFile, validateProfileValue, } from './schema.js';
export const DEFAULTS = {
    scopes: ['profile', 'email'],
    storage: 'auto',
    insecure_http: false,
    login_timeout: 300,
    login_flow: 'auto',
    dpop: true,
    admin_acr: 'phr',
    local_port: 7700,
    ssh_transport: 'auto',
    // A working day: an agent nobody has used for that long belongs to someone who has left. Its
    // memory-only logins end with it (logins in the keychain without DPoP come back on the next command).
    agent_idle_timeout: 8 * 3600,
};
export const ENV_VARS = {
    issuer: 'MCP_SECURE_ISSUER',
    client_id: 'MCP_SECURE_CLIENT_ID',
    scopes: 'MCP_SECURE_SCOPES',
    storage: 'MCP_SECURE_STORAGE',
    insecure_http: 'MCP_SECURE_INSECURE_HTTP',
    login_timeout: 'MCP_SECURE_LOGIN_TIMEOUT',
    login_flow: 'MCP_SECURE_LOGIN_FLOW',
    mcp_resource: 'MCP_SECURE_MCP_RESOURCE',
    exchange_endpoint: 'MCP_SECURE_EXCHANGE_ENDPOINT',
    exchange_issuer: 'MCP_SECURE_EXCHANGE_ISSUER',
    dpop: 'MCP_SECURE_DPOP',
    admin_acr: 'MCP_SECURE_ADMIN_ACR',
    bastion: 'MCP_SECURE_BASTION',
    jump: 'MCP_SECURE_JUMP',
    identity_file: 'MCP_SECURE_IDENTITY_FILE',
    host_key_fingerprints: 'MCP_SECURE_HOST_KEY_FINGERPRINTS',
    mcp_url: 'MCP_SECURE_MCP_URL',
    local_port: 'MCP_SECURE_LOCAL_PORT',
    callback_port: 'MCP_SECURE_CALLBACK_PORT',
    ssh_transport: 'MCP_SECURE_SSH_TRANSPORT',
    ssh_ca_endpoint: 'MCP_SECURE_SSH_CA_ENDPOINT',
    agent_idle_timeout: 'MCP_SECURE_AGENT_IDLE_TIMEOUT',
    mcp_ca_file: 'MCP_SECURE_MCP_CA_FILE',
    client_cert_endpoint: 'MCP_SECURE_CLIENT_CERT_ENDPOINT',
    client_cert_file: 'MCP_SECURE_CLIENT_CERT_FILE',
    client_key_file: 'MCP_SECURE_CLIENT_KEY_FILE',
    audit_log_key: 'MCP_SECURE_AUDIT_LOG_KEY',
};
async function readJsonFile(file) {
    return (await readJsonText(file))?.data;
}
/** The file's exact bytes' SHA-256 (what a trust approval is for) and its parsed JSON. */
async function readJsonText(file) {
    let text;
    try {
        text = await readFile(file, 'utf8');
    }
    catch (err) {
        if (err.code === 'ENOENT')
            return undefined;
        throw new CliError('error', `cannot read config ${file}: ${err.message}`, {
            hint: 'check its permissions',
        });
    }
    try {
        return { data: JSON.parse(text), sha256: createHash('sha256').update(text, 'utf8').digest('hex') };
    }
    catch (err) {
        throw new CliError('error', `invalid config ${file}: not valid JSON (${err.message})`, {
            hint: 'fix the file, or move it away and run `mcp-secure config set` again',
        });
    }
}
export async function readConfigFile(file, kind = 'user') {
    const data = await readJsonFile(file);
    return data === undefined ? undefined : validateConfigFile(file, data, kind);
}
/** The nearest `.mcp-secure.json` in `cwd` or a parent directory. */
async function findProjectFile(cwd) {
    let dir = cwd;
    const { root } = parsePath(cwd);
    for (let i = 0; i < 64; i++) {
        const candidate = join(dir, PROJECT_CONFIG_FILE);
        if (await stat(candidate).then((s) => s.isFile(), () => false))
            return candidate;
        if (dir === root)
            return undefined;
        dir = dirname(dir);
    }
    return undefined;
}
export async function loadEffectiveProfile(options) {
    const userFile = join(options.configDir, USER_CONFIG_FILE);
    const projectFile = await findProjectFile(options.cwd);
    const user = await readConfigFile(userFile);
    const projectText = projectFile ? await readJsonText(projectFile) : undefined;
    const project = projectFile && projectText ? validateConfigFile(projectFile, projectText.data, 'project') : undefined;
    let name;
    let nameSource;
    const envProfile = options.env['MCP_SECURE_PROFILE'];
    if (options.profileFlag) {
        name = options.profileFlag;
        nameSource = { kind: 'flag', detail: '--profile' };
    }
    else if (envProfile) {
        name = envProfile;
        nameSource = { kind: 'env', detail: 'MCP_SECURE_PROFILE' };
    }
    else if (project?.default_profile && projectFile) {
        name = project.default_profile;
        nameSource = { kind: 'project', detail: projectFile };
    }
    else if (user?.default_profile) {
        name = user.default_profile;
        nameSource = { kind: 'user', detail: userFile };
    }
    else {
        name = 'default';
        nameSource = { kind: 'default', detail: 'built-in' };
    }
    if (!PROFILE_NAME.test(name)) {
        throw new CliError('usage', `invalid profile name "${name.slice(0, 64)}" (from ${nameSource.detail})`, {
            hint: 'use letters, digits, ".", "_" or "-"',
        });
    }
    const sources = {};
    const set = (key, value, source) => {
        sources[key] = { value, source };
    };
    const userProfile = user?.profiles[name];
    let projectProfile = project?.profiles[name];
    const ignored = [];
    if (projectProfile && projectFile && projectText) {
        projectProfile = await vetProjectProfile({
            options,
            file: projectFile,
            sha256: projectText.sha256,
            profile: projectProfile,
            trusted: user?.trusted_projects?.[projectFile],
            ignored,
        });
    }
    for (const key of Object.keys(PROFILE_KEYS)) {
        const flagValue = options.flags?.[key];
        const envText = options.env[ENV_VARS[key]];
        if (flagValue !== undefined) {
            const flag = options.flagNames?.[key] ?? `--${key.replace(/_/g, '-')}`;
            validateProfileValue({ kind: 'flag' }, flag, key, flagValue);
            set(key, flagValue, { kind: 'flag', detail: flag });
        }
        else if (envText !== undefined && envText !== '') {
            const value = PROFILE_KEYS[key].parse(envText);
            validateProfileValue({ kind: 'env' }, ENV_VARS[key], key, value);
            set(key, value, { kind: 'env', detail: ENV_VARS[key] });
        }
        else if (projectProfile?.[key] !== undefined && projectFile) {
            set(key, projectProfile[key], { kind: 'project', detail: projectFile });
        }
        else if (userProfile?.[key] !== undefined) {
            set(key, userProfile[key], { kind: 'user', detail: userFile });
        }
    }
    const merged = { ...DEFAULTS };
    for (const [key, entry] of Object.entries(sources))
        merged[key] = entry.value;
    return {
        name,
        nameSource,
        profile: merged,
        sources,
        userFile,
        projectFile,
        defined: Boolean(userProfile || projectProfile),
        ignored,
    };
}
/**
 * The project file's profile as far as it may count. A project file comes with a repository someone else
 * wrote: it may set the PROJECT_SAFE_KEYS; any other key (where tokens, keys and connections go, how they
 * are protected) counts only once the user approved this exact file (its SHA-256, like direnv's `allow`),
 * and unsafe modes never.
 */
async function vetProjectProfile(v) {
    const entries = Object.entries(v.profile);
    for (const [key, value] of entries) {
        if (projectForbidden(key, value)) {
            throw new CliError('usage', `project config ${v.file} sets ${key}: ${JSON.stringify(value)}, an unsafe mode or a trust setting only your own config or a flag may set`, {
                hint: `remove it from ${v.file}; if you mean it, set it yourself (\`mcp-secure config set ${key} ${JSON.stringify(value)}\`)`,
            });
        }
    }
    const moving = entries.filter(([key]) => !PROJECT_SAFE_KEYS.has(key));
    if (moving.length === 0 || v.trusted === v.sha256)
        return v.profile;
    if (v.options.untrusted === 'ignore') {
        v.ignored.push(...moving.map(([key]) => key));
        return Object.fromEntries(entries.filter(([key]) => PROJECT_SAFE_KEYS.has(key)));
    }
    const question = {
        file: v.file,
        keys: moving.map(([key, value]) => ({ key, value })),
        changed: v.trusted !== undefined,
    };
    if (v.options.confirmProject && (await v.options.confirmProject(question))) {
        await updateUserConfig(v.options.configDir, (config) => {
            config.trusted_projects = { ...config.trusted_projects, [v.file]: v.sha256 };
        });
        return v.profile;
    }
    const names = moving.map(([key]) => key).join(', ');
    throw new CliError('usage', `project config ${v.file} ${question.changed ? 'changed since you trusted it and ' : ''}sets ${names}, which only your own config may set`, {
        hint: v.options.confirmProject
            ? `remove ${moving.length > 1 ? 'them' : 'it'} from ${v.file}, or set ${moving.length > 1 ? 'them' : 'it'} in your own config (\`mcp-secure config set KEY VALUE\`)`
            : `review ${v.file}, then run mcp-secure in a terminal to trust it, or set ${moving.length > 1 ? 'them' : 'it'} in your own config (\`mcp-secure config set KEY VALUE\`)`,
    });
}
/**
 * The config directory is the user's alone (0700): its file names show profiles and tenants, and it holds
 * the locks and the tenant state. An existing one with looser modes (0755 from an older version, a
 * `mkdir` by hand, a restored backup) is tightened to 0700; one we cannot change (another owner, a
 * read-only mount) is reported as it is, for `doctor` to show. POSIX only: Windows has no such modes.
 */
export async function tightenConfigDir(dir, platform) {
    if (platform === 'win32')
        return { status: 'private' };
    let st;
    try {
        st = await stat(dir);
    }
    catch {
        return { status: 'missing' };
    }
    const mode = st.mode & 0o777;
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
        return { status: 'loose', mode, reason: `it belongs to uid ${st.uid}, not to you (uid ${uid})` };
    }
    if ((mode & 0o077) === 0)
        return { status: 'private' };
    try {
        await chmod(dir, 0o700);
        return { status: 'tightened', from: mode };
    }
    catch (err) {
        return {
            status: 'loose',
            mode,
            reason: `chmod failed (${err.code ?? 'error'})`,
        };
    }
}
/**
 * Writes a file atomically with mode 0600: a temp file in the same directory, then rename. A failure
 * (a read-only or full disk, a directory someone else owns) leaves the old file and no temp file, and is
 * one line naming the file.
 */
export async function writeFileAtomic(file, content) {
    const { randomBytes } = await import('node:crypto');
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
        await mkdir(dirname(file), { recursive: true, mode: 0o700 });
        const handle = await open(tmp, 'wx', 0o600);
        try {
            await handle.writeFile(content, 'utf8');
            await handle.sync();
        }
        finally {
            await handle.close();
        }
        await rename(tmp, file);
        await chmod(file, 0o600);
    }
    catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        const code = err.code;
        throw new CliError('error', `cannot write ${file} (${code ?? 'error'})`, {
            hint: `check that ${dirname(file)} is yours and writable (or set MCP_SECURE_CONFIG_DIR)`,
            cause: err,
        });
    }
}
/** Reads, changes and atomically rewrites the user config file. The change is validated before writing. */
export async function updateUserConfig(configDir, change) {
    const file = join(configDir, USER_CONFIG_FILE);
    const config = (await readConfigFile(file)) ?? { profiles: {} };
    change(config);
    const validated = validateConfigFile(file, JSON.parse(JSON.stringify(config)));
    await writeFileAtomic(file, `${JSON.stringify(validated, null, 2)}\n`);
    return file;
}
export function parseProfileValue(key, text) {
    if (!isProfileKey(key)) {
        throw new CliError('usage', `unknown config key "${key.slice(0, 40)}"`, {
            hint: `known keys: ${Object.keys(PROFILE_KEYS).join(', ')}`,
        });
    }
    return PROFILE_KEYS[key].parse(text);
}
