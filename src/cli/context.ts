/** Shared start of every command: the effective profile, and the Ui. */
import { type EffectiveProfile, loadEffectiveProfile } from '../config/load.js';
import type { Deps } from '../io.js';
import { NO_FLAGS, type ProfileFlags } from './commands/shared.js';
import type { GlobalOptions } from './ui.js';

export { type ProfileFlags, profileFlags } from './commands/shared.js';

export async function loadProfile(
  deps: Deps,
  globals: GlobalOptions,
  flags: ProfileFlags = NO_FLAGS,
): Promise<EffectiveProfile> {
  return loadEffectiveProfile({
    configDir: deps.configDir,
    cwd: deps.cwd,
    env: deps.env,
    profileFlag: globals.profile,
    flags: flags.values,
    flagNames: flags.names,
  });
}

export { requireIdp } from '../config/require.js';
