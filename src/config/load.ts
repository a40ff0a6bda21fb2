/**
 * The effective profile, and where each value came from. Precedence: flags > environment > project file
 * (`.mcp-secure.json` in the working directory or a parent) > user file (`config.json` in the config dir).
 */
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, parse as parsePath } from 'node:path';
import { CliError } from '../errors.js';
import { PROJECT_CONFIG_FILE, USER_CONFIG_FILE } from './paths.js';
import {
  type ConfigFile,
  isProfileKey,
  PROFILE_KEYS,
  PROFILE_NAME,
  type Profile,
  validateConfigFile,
  validateProfileValue,
} from './schema.js';

export type SourceKind = 'flag' | 'env' | 'project' | 'user' | 'default';
export interface Source {
  kind: SourceKind;
  /** The flag, the variable or the file. */
  detail: string;
}

/** Keys with no default: a command that needs one says how to set it. */
type NoDefault =
  | 'issuer'
  | 'client_id'
  | 'mcp_resource'
  | 'exchange_endpoint'
  | 'bastion'
  | 'jump'
  | 'identity_file'
  | 'host_key_fingerprints'
  | 'mcp_url'
  | 'callback_port';

export const DEFAULTS: Required<Omit<Profile, NoDefault>> = {
  scopes: ['profile', 'email'],
  storage: 'auto',
  insecure_http: false,
  login_timeout: 300,
  login_flow: 'auto',
  dpop: true,
  admin_acr: 'phr',
  local_port: 7700,
};

export const ENV_VARS: Readonly<Record<keyof Profile, string>> = {
  issuer: 'MCP_SECURE_ISSUER',
  client_id: 'MCP_SECURE_CLIENT_ID',
  scopes: 'MCP_SECURE_SCOPES',
  storage: 'MCP_SECURE_STORAGE',
  insecure_http: 'MCP_SECURE_INSECURE_HTTP',
  login_timeout: 'MCP_SECURE_LOGIN_TIMEOUT',
  login_flow: 'MCP_SECURE_LOGIN_FLOW',
  mcp_resource: 'MCP_SECURE_MCP_RESOURCE',
  exchange_endpoint: 'MCP_SECURE_EXCHANGE_ENDPOINT',
  dpop: 'MCP_SECURE_DPOP',
  admin_acr: 'MCP_SECURE_ADMIN_ACR',
  bastion: 'MCP_SECURE_BASTION',
  jump: 'MCP_SECURE_JUMP',
  identity_file: 'MCP_SECURE_IDENTITY_FILE',
  host_key_fingerprints: 'MCP_SECURE_HOST_KEY_FINGERPRINTS',
  mcp_url: 'MCP_SECURE_MCP_URL',
  local_port: 'MCP_SECURE_LOCAL_PORT',
  callback_port: 'MCP_SECURE_CALLBACK_PORT',
};

/** Keys a project file (which comes with a repository someone else wrote) may not set: unsafe modes. */
const NOT_FROM_PROJECT: ReadonlySet<keyof Profile> = new Set(['insecure_http']);

export type Resolved = { [K in keyof Profile]?: { value: NonNullable<Profile[K]>; source: Source } };

export interface EffectiveProfile {
  name: string;
  nameSource: Source;
  /** The merged values, defaults filled in. */
  profile: Profile & typeof DEFAULTS;
  sources: Resolved;
  userFile: string;
  projectFile: string | undefined;
  /** True when the profile is defined in some file (not only by flags, env or defaults). */
  defined: boolean;
}

export interface LoadOptions {
  configDir: string;
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  profileFlag?: string | undefined;
  flags?: Partial<Profile>;
  /** Names of the flags that set each key, for `config` output. */
  flagNames?: Partial<Record<keyof Profile, string>>;
}

async function readJsonFile(file: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError('error', `cannot read config ${file}: ${(err as Error).message}`, {
      hint: 'check its permissions',
    });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError('error', `invalid config ${file}: not valid JSON (${(err as Error).message})`, {
      hint: 'fix the file, or move it away and run `mcp-secure config set` again',
    });
  }
}

export async function readConfigFile(file: string): Promise<ConfigFile | undefined> {
  const data = await readJsonFile(file);
  return data === undefined ? undefined : validateConfigFile(file, data);
}

/** The nearest `.mcp-secure.json` in `cwd` or a parent directory. */
async function findProjectFile(cwd: string): Promise<string | undefined> {
  let dir = cwd;
  const { root } = parsePath(cwd);
  for (let i = 0; i < 64; i++) {
    const candidate = join(dir, PROJECT_CONFIG_FILE);
    if (
      await stat(candidate).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return candidate;
    if (dir === root) return undefined;
    dir = dirname(dir);
  }
  return undefined;
}

export async function loadEffectiveProfile(options: LoadOptions): Promise<EffectiveProfile> {
  const userFile = join(options.configDir, USER_CONFIG_FILE);
  const projectFile = await findProjectFile(options.cwd);
  const user = await readConfigFile(userFile);
  const project = projectFile ? await readConfigFile(projectFile) : undefined;

  let name: string;
  let nameSource: Source;
  const envProfile = options.env['MCP_SECURE_PROFILE'];
  if (options.profileFlag) {
    name = options.profileFlag;
    nameSource = { kind: 'flag', detail: '--profile' };
  } else if (envProfile) {
    name = envProfile;
    nameSource = { kind: 'env', detail: 'MCP_SECURE_PROFILE' };
  } else if (project?.default_profile && projectFile) {
    name = project.default_profile;
    nameSource = { kind: 'project', detail: projectFile };
  } else if (user?.default_profile) {
    name = user.default_profile;
    nameSource = { kind: 'user', detail: userFile };
  } else {
    name = 'default';
    nameSource = { kind: 'default', detail: 'built-in' };
  }
  if (!PROFILE_NAME.test(name)) {
    throw new CliError('usage', `invalid profile name "${name.slice(0, 64)}" (from ${nameSource.detail})`, {
      hint: 'use letters, digits, ".", "_" or "-"',
    });
  }

  const sources: Resolved = {};
  const set = (key: keyof Profile, value: unknown, source: Source) => {
    (sources as Record<string, { value: unknown; source: Source }>)[key] = { value, source };
  };
  const userProfile = user?.profiles[name];
  const projectProfile = project?.profiles[name];
  for (const key of Object.keys(PROFILE_KEYS) as Array<keyof Profile>) {
    const flagValue = options.flags?.[key];
    const envText = options.env[ENV_VARS[key]];
    if (flagValue !== undefined) {
      const flag = options.flagNames?.[key] ?? `--${key.replace(/_/g, '-')}`;
      validateProfileValue({ kind: 'flag' }, flag, key, flagValue);
      set(key, flagValue, { kind: 'flag', detail: flag });
    } else if (envText !== undefined && envText !== '') {
      const value = PROFILE_KEYS[key].parse(envText);
      validateProfileValue({ kind: 'env' }, ENV_VARS[key], key, value);
      set(key, value, { kind: 'env', detail: ENV_VARS[key] });
    } else if (projectProfile?.[key] !== undefined && projectFile) {
      if (NOT_FROM_PROJECT.has(key)) {
        throw new CliError('trust', `project config ${projectFile} sets ${key}, an unsafe mode`, {
          hint: `remove it there; set it in your own config (\`mcp-secure config set ${key} true\`) if you mean it`,
        });
      }
      set(key, projectProfile[key], { kind: 'project', detail: projectFile });
    } else if (userProfile?.[key] !== undefined) {
      set(key, userProfile[key], { kind: 'user', detail: userFile });
    }
  }
  const merged: Record<string, unknown> = { ...DEFAULTS };
  for (const [key, entry] of Object.entries(sources)) merged[key] = entry.value;
  return {
    name,
    nameSource,
    profile: merged as unknown as EffectiveProfile['profile'],
    sources,
    userFile,
    projectFile,
    defined: Boolean(userProfile || projectProfile),
  };
}

/**
 * Writes a file atomically with mode 0600: a temp file in the same directory, then rename. A failure
 * (a read-only or full disk, a directory someone else owns) leaves the old file and no temp file, and is
 * one line naming the file.
 */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const { randomBytes } = await import('node:crypto');
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    await chmod(file, 0o600);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError('error', `cannot write ${file} (${code ?? 'error'})`, {
      hint: `check that ${dirname(file)} is yours and writable (or set MCP_SECURE_CONFIG_DIR)`,
      cause: err,
    });
  }
}

/** Reads, changes and atomically rewrites the user config file. The change is validated before writing. */
export async function updateUserConfig(
  configDir: string,
  change: (config: ConfigFile) => void,
): Promise<string> {
  const file = join(configDir, USER_CONFIG_FILE);
  const config = (await readConfigFile(file)) ?? { profiles: {} };
  change(config);
  const validated = validateConfigFile(file, JSON.parse(JSON.stringify(config)));
  await writeFileAtomic(file, `${JSON.stringify(validated, null, 2)}\n`);
  return file;
}

export function parseProfileValue(key: string, text: string): unknown {
  if (!isProfileKey(key)) {
    throw new CliError('usage', `unknown config key "${key.slice(0, 40)}"`, {
      hint: `known keys: ${Object.keys(PROFILE_KEYS).join(', ')}`,
    });
  }
  return PROFILE_KEYS[key].parse(text);
}
