/** A throwaway user environment for one CLI run: HOME, config dir and TMPDIR of its own. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { baseEnv } from './cli.js';
import { tempDir } from './deps.js';

export interface UserEnv {
  root: string;
  home: string;
  configDir: string;
  tmp: string;
  env(extra?: Record<string, string | undefined>): Record<string, string>;
}

export async function userEnv(base: Record<string, string> = {}): Promise<UserEnv> {
  const root = await tempDir('mcp-secure-e2e-');
  const home = join(root, 'home');
  const configDir = join(home, '.config', 'mcp-secure');
  const tmp = join(root, 'tmp');
  await mkdir(home, { recursive: true });
  await mkdir(tmp, { recursive: true });
  return {
    root,
    home,
    configDir,
    tmp,
    env: (extra = {}) =>
      baseEnv({ HOME: home, TMPDIR: tmp, XDG_CONFIG_HOME: join(home, '.config'), ...base, ...extra }),
  };
}
