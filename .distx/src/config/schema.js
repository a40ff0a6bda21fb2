/**
 * The profile schema, validated by hand: a schema library would cost start-up time on every command, and
 * the errors we want name the file, the key and what was expected, which is easy to do directly.
 */
import { isAbsolute } from 'node:path';
import { CliError, sanitize } from '../errors.js';
/** Where the refresh token is kept: the one list (flags, config values, env and docs use it). */
export const STORAGES = ['auto', 'keychain', 'memory'];
/**
 * The only keys a project file (`.mcp-secure.json`, which comes with a repository someone else wrote) may
 * set without the user's approval: none of them says where tokens, keys or connections go or how they are
 * protected. An allow-list, so a key added later is trust-moving until someone decides otherwise here.
 */
export const PROJECT_SAFE_KEYS = new Set(['login_timeout', 'login_flow']);
/**
 * Values a project file may never set, even approved: unsafe modes are named opt-ins of the user's own
 * (DESIGN.md), never something a repository switches on.
 */
export function projectForbidden(key, value) {
    return ((key === 'insecure_http' && value === true) || (key === 'dpop' && value === false) || USER_ONLY.has(key));
}
/**
 * Keys only the user's own config, the environment or a flag may set, whatever a project file's approval:
 * the CA the MCP server's certificate is checked against, where a client certificate is asked for (with
 * the tenant token), and which certificate and key are presented. Each decides whom the tunnel trusts.
 */
const USER_ONLY = new Set([
    'mcp_ca_file',
    'client_cert_endpoint',
    'client_cert_file',
    'client_key_file',
]);
/** `HOST=SHA256:…`: a pin names its hop (known_hosts' host token) and the key's fingerprint. */
export const PIN = /^([^\s=,]+)=(SHA256:[A-Za-z0-9+/]{43})$/;
const isString = (v) => typeof v === 'string' && v.length > 0;
const oneOf = (...values) => (v) => typeof v === 'string' && values.includes(v);
function parseBool(text) {
    if (/^(true|yes|1|on)$/i.test(text))
        return true;
    if (/^(false|no|0|off)$/i.test(text))
        return false;
    return text;
}
export const PROFILE_KEYS = {
    audit_log_key: {
        expected: 'a signed-note verifier key: name+8 hex digits+base64',
        check: (v) => isString(v) && /^[^\s+]{1,256}\+[0-9a-f]{8}\+[A-Za-z0-9+/]{43}[A-Za-z0-9+/=]$/.test(v),
        parse: (t) => t.trim(),
    },
    issuer: {
        expected: 'an https:// URL (http:// only on loopback with insecure_http)',
        check: (v) => isString(v) && URL.canParse(v) && /^https?:$/.test(new URL(v).protocol),
        parse: (t) => t,
    },
    client_id: { expected: 'a non-empty string', check: isString, parse: (t) => t },
    scopes: {
        expected: 'a list of scope names without spaces',
        check: (v) => Array.isArray(v) && v.every((s) => isString(s) && !/\s/.test(s)),
        parse: (t) => t.split(/[\s,]+/).filter(Boolean),
    },
    storage: {
        expected: '"auto", "keychain" or "memory"',
        check: oneOf(...STORAGES),
        parse: (t) => t,
    },
    insecure_http: { expected: 'true or false', check: (v) => typeof v === 'boolean', parse: parseBool },
    login_timeout: {
        expected: 'a number of seconds between 10 and 3600',
        check: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 10 && v <= 3600,
        parse: (t) => (t.trim() === '' ? t : Number(t)),
    },
    login_flow: {
        expected: '"auto", "device" or "browser"',
        check: oneOf('auto', 'device', 'browser'),
        parse: (t) => t,
    },
    mcp_resource: {
        expected: 'an absolute URI',
        check: (v) => isString(v) && URL.canParse(v),
        parse: (t) => t,
    },
    exchange_endpoint: {
        expected: 'an https:// URL',
        check: (v) => isString(v) && URL.canParse(v) && /^https?:$/.test(new URL(v).protocol),
        parse: (t) => t,
    },
    exchange_issuer: {
        expected: 'an https:// issuer URL (http:// only on loopback with insecure_http)',
        check: (v) => isString(v) && URL.canParse(v) && /^https?:$/.test(new URL(v).protocol),
        parse: (t) => t,
    },
    dpop: { expected: 'true or false', check: (v) => typeof v === 'boolean', parse: parseBool },
    admin_acr: {
        expected: 'an acr value (a non-empty string without spaces)',
        check: (v) => isString(v) && !/\s/.test(v),
        parse: (t) => t,
    },
    bastion: {
        expected: '[user@]host[:port] or a Host from ~/.ssh/config',
        check: (v) => isString(v) && /^[^\s]+$/.test(v),
        parse: (t) => t,
    },
    jump: {
        expected: 'a list of [user@]host[:port]',
        check: (v) => Array.isArray(v) && v.every((s) => isString(s) && /^[^\s,]+$/.test(s)),
        parse: (t) => t.split(/[\s,]+/).filter(Boolean),
    },
    identity_file: { expected: 'a path to an SSH private key', check: isString, parse: (t) => t },
    host_key_fingerprints: {
        expected: 'a list of HOST=SHA256:… pins (HOST as known_hosts names the hop: host, or [host]:port off port 22; the fingerprint as ssh-keygen -lf prints it)',
        check: (v) => Array.isArray(v) && v.every((s) => typeof s === 'string' && PIN.test(s)),
        parse: (t) => t.split(/[\s,]+/).filter(Boolean),
    },
    mcp_url: {
        expected: 'an http:// or https:// URL of the in-cluster MCP endpoint, or http+unix://%2Fpath%2Fto.sock/mcp for a Unix socket on the bastion',
        check: (v) => isString(v) &&
            URL.canParse(v) &&
            (/^https?:$/.test(new URL(v).protocol) ||
                (new URL(v).protocol === 'http+unix:' && decodeURIComponent(new URL(v).host).startsWith('/'))),
        parse: (t) => t,
    },
    ssh_transport: {
        expected: '"auto", "openssh" or "ssh2"',
        check: oneOf('auto', 'openssh', 'ssh2'),
        parse: (t) => t,
    },
    ssh_ca_endpoint: {
        expected: 'an https:// URL (http:// only on loopback)',
        check: (v) => isString(v) &&
            URL.canParse(v) &&
            (new URL(v).protocol === 'https:' ||
                (new URL(v).protocol === 'http:' &&
                    /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/.test(new URL(v).hostname))),
        parse: (t) => t,
    },
    local_port: {
        expected: 'a port number between 1 and 65535',
        check: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535,
        parse: (t) => (t.trim() === '' ? t : Number(t)),
    },
    agent_idle_timeout: {
        expected: 'a number of seconds (0: never), or a duration such as 30m or 8h',
        check: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 30 * 86400,
        parse: (t) => {
            const m = /^\s*(\d+)\s*([smhd]?)\s*$/.exec(t);
            if (!m)
                return t;
            const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
            return Number(m[1]) * unit;
        },
    },
    mcp_ca_file: { expected: 'a path to a PEM CA bundle', check: isString, parse: (t) => t },
    client_cert_endpoint: {
        expected: 'an https:// URL (http:// only on loopback)',
        check: (v) => isString(v) &&
            URL.canParse(v) &&
            (new URL(v).protocol === 'https:' ||
                (new URL(v).protocol === 'http:' &&
                    /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/.test(new URL(v).hostname))),
        parse: (t) => t,
    },
    client_cert_file: { expected: 'a path to a PEM certificate', check: isString, parse: (t) => t },
    client_key_file: { expected: 'a path to a PEM private key', check: isString, parse: (t) => t },
    callback_port: {
        expected: 'a list of port numbers between 1024 and 65535 (the registered http://127.0.0.1:PORT/callback)',
        check: (v) => Array.isArray(v) &&
            v.length > 0 &&
            v.every((p) => typeof p === 'number' && Number.isInteger(p) && p >= 1024 && p <= 65535),
        parse: (t) => t
            .split(/[\s,]+/)
            .filter(Boolean)
            .map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
    },
};
/** Tenant names: lower-case letters, digits and dashes, as the control plane names them. */
export const TENANT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A tenant name as a DNS label: checked before anything touches the network (exit 2). */
export function checkTenantName(tenant) {
    if (!TENANT_NAME.test(tenant)) {
        throw new CliError('usage', `invalid tenant name "${sanitize(tenant, 64)}"`, {
            hint: 'tenant names use lower-case letters, digits and dashes (at most 63)',
        });
    }
    return tenant;
}
export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export function isProfileKey(key) {
    return Object.hasOwn(PROFILE_KEYS, key);
}
function configError(file, key, expected) {
    return new CliError('error', `invalid config ${file}: ${key} must be ${expected}`, {
        hint: `fix it, or run \`mcp-secure config set\` to rewrite it`,
    });
}
function valueError(origin, path, expected) {
    if (origin.kind === 'file')
        return configError(origin.file, path, expected);
    if (origin.kind === 'flag') {
        return new CliError('usage', `invalid ${path}: must be ${expected}`, { hint: 'see `mcp-secure help`' });
    }
    return new CliError('error', `invalid environment variable ${path}: must be ${expected}`, {
        hint: `fix or unset ${path}`,
    });
}
export function validateProfileValue(origin, path, key, value) {
    if (!isProfileKey(key)) {
        throw valueError(origin, path, `one of the known keys (${Object.keys(PROFILE_KEYS).join(', ')})`);
    }
    const spec = PROFILE_KEYS[key];
    if (!spec.check(value))
        throw valueError(origin, path, spec.expected);
}
const SHA256_HEX = /^[0-9a-f]{64}$/;
/**
 * Validates a parsed config file; throws a CliError naming the file, the key and what was expected.
 * `kind` is which file it is: only the user's own may hold `trusted_projects`.
 */
export function validateConfigFile(file, data, kind = 'user') {
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
        throw configError(file, 'the top level', 'a JSON object');
    }
    const obj = data;
    for (const key of Object.keys(obj)) {
        if (key === 'trusted_projects' && kind === 'user')
            continue;
        if (key !== 'profiles' && key !== 'default_profile' && key !== '$schema') {
            throw configError(file, key, 'absent (known top-level keys: default_profile, profiles)');
        }
    }
    const trusted = obj['trusted_projects'];
    if (trusted !== undefined &&
        (typeof trusted !== 'object' ||
            trusted === null ||
            Array.isArray(trusted) ||
            !Object.entries(trusted).every(([k, v]) => isAbsolute(k) && typeof v === 'string' && SHA256_HEX.test(v)))) {
        throw configError(file, 'trusted_projects', 'an object of absolute paths to SHA-256 hex digests');
    }
    if (obj['default_profile'] !== undefined &&
        !(isString(obj['default_profile']) && PROFILE_NAME.test(obj['default_profile']))) {
        throw configError(file, 'default_profile', 'a profile name');
    }
    const profiles = obj['profiles'] ?? {};
    if (typeof profiles !== 'object' || profiles === null || Array.isArray(profiles)) {
        throw configError(file, 'profiles', 'an object of named profiles');
    }
    for (const [name, profile] of Object.entries(profiles)) {
        if (!PROFILE_NAME.test(name))
            throw configError(file, `profiles.${name}`, 'named with letters, digits, ".", "_" or "-"');
        if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) {
            throw configError(file, `profiles.${name}`, 'an object');
        }
        for (const [key, value] of Object.entries(profile)) {
            validateProfileValue({ kind: 'file', file }, `profiles.${name}.${key}`, key, value);
        }
    }
    const out = { profiles: profiles };
    if (typeof obj['default_profile'] === 'string')
        out.default_profile = obj['default_profile'];
    if (trusted !== undefined)
        out.trusted_projects = trusted;
    return out;
}
