import { CliError } from '../errors.js';
import { probeKeychain } from './keychain.js';
import { MemoryStore } from './memory-store.js';
/**
 * Picks the token store. `keychain` fails when none is usable; `auto` falls back to memory and says why;
 * there is no file fallback.
 */
export async function openStore(choice, deps, account, options = {}) {
    if (choice === 'memory')
        return { store: new MemoryStore() };
    let reasons = [];
    let api;
    try {
        api = await deps.keychain();
    }
    catch (err) {
        reasons = [`the keychain library did not load: ${err instanceof Error ? err.message : String(err)}`];
    }
    if (api) {
        // A locked keychain throws here, on purpose: that is not a reason to fall back.
        const probe = await probeKeychain(api, deps.platform, account, options);
        if (probe.store)
            return { store: probe.store };
        reasons = probe.reasons;
    }
    const reason = reasons.join('; ');
    if (choice === 'keychain') {
        throw new CliError('error', `no OS keychain is usable here (${reason})`, {
            hint: 'start or unlock your keychain (on Linux: a Secret Service such as gnome-keyring), or use `--storage memory`',
        });
    }
    return { store: new MemoryStore(), fallbackReason: reason };
}
