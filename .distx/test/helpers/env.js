/** A throwaway user environment for one CLI run: HOME, config dir and TMPDIR of its own. */
import { rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { baseEnv } from './cli.js';
import { tempDir } from './deps.js';
const roots = new Set();
/**
 * Every user environment is removed when the test process exits: with it goes the socket of any agent a
 * command started there, and an agent whose socket is removed ends within seconds (as gpg-agent does),
 * so no test leaves an agent behind.
 */
function removeAtExit(root) {
    if (roots.size === 0) {
        process.once('exit', () => {
            for (const r of roots)
                rmSync(r, { recursive: true, force: true });
        });
    }
    roots.add(root);
}
export async function userEnv(base = {}) {
    const root = await tempDir('mcp-secure-e2e-');
    removeAtExit(root);
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
        env: (extra = {}) => baseEnv({ HOME: home, TMPDIR: tmp, XDG_CONFIG_HOME: join(home, '.config'), ...base, ...extra }),
    };
}
