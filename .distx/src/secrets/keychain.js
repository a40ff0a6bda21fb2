/**
 * The OS keychain through @napi-rs/keyring (keytar is archived and does not install without a download
 * or libsecret headers). On Linux the library silently falls back from the Secret Service to the kernel
 * keyring (keyutils, lost at reboot) — so we pin each store explicitly and report which one holds the token.
 */
import { CliError } from '../errors.js';
export async function loadKeychainApi() {
    const { AsyncEntry } = await import('@napi-rs/keyring');
    return {
        entry: (service, account, linuxStore) => new AsyncEntry(service, account, linuxStore ? { linux: { store: linuxStore } } : undefined),
    };
}
export const KEYCHAIN_SERVICE = 'mcp-secure';
export const DEFAULT_KEYCHAIN_TIMEOUT_MS = 5000;
function linuxStoreFor(kind) {
    if (kind === 'secret-service')
        return 'secret-service';
    if (kind === 'kernel-keyring')
        return 'keyutils';
    return undefined;
}
/**
 * keyring-rs's NoStorageAccess ("the store is there but refused": locked, prompt dismissed, access denied)
 * as opposed to PlatformFailure (no D-Bus, no Secret Service). The binding passes no error code, only the
 * variant's fixed Display text, so that prefix is the one thing to tell them apart.
 */
function isAccessRefused(err) {
    return err instanceof Error && err.message.startsWith("Couldn't access platform storage");
}
/**
 * A Secret Service that is there but does not answer (hung, or waiting on an unlock prompt nobody sees):
 * D-Bus gives up on the call after its own timeout with libdbus's fixed NoReply text, which keyring-rs
 * passes on as a PlatformFailure, the same variant as "no Secret Service at all". Only the text tells them
 * apart, as with isAccessRefused.
 */
function isNoReply(err) {
    return err instanceof Error && err.message.includes('Did not receive a reply');
}
/** A keychain call that did not answer in time (a prompt nobody sees, a hung D-Bus service). */
class KeychainTimeoutError extends CliError {
}
function describeError(err) {
    return err instanceof Error ? err.message : String(err);
}
/**
 * Every keychain call is bounded in time: a locked Secret Service may wait forever for an unlock prompt
 * nobody sees. The signal asks the native side to stop; the race makes sure we do regardless.
 */
async function bounded(what, timeoutMs, op) {
    const controller = new AbortController();
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => {
            controller.abort();
            reject(new KeychainTimeoutError('error', `the OS keychain did not answer within ${timeoutMs / 1000} s while ${what}`, {
                hint: 'unlock your keychain and try again, or use `--storage memory`',
            }));
        }, timeoutMs);
    });
    try {
        return await Promise.race([op(controller.signal), timeout]);
    }
    catch (err) {
        if (err instanceof CliError)
            throw err;
        throw new CliError('error', `the OS keychain failed while ${what}: ${describeError(err)}`, {
            hint: 'check that your keychain is unlocked, or use `--storage memory`',
            cause: err,
        });
    }
    finally {
        clearTimeout(timer);
    }
}
export class KeychainStore {
    kind;
    #api;
    #timeoutMs;
    #service;
    constructor(options) {
        this.kind = options.kind;
        this.#api = options.api;
        this.#timeoutMs = options.timeoutMs ?? DEFAULT_KEYCHAIN_TIMEOUT_MS;
        this.#service = options.service ?? KEYCHAIN_SERVICE;
    }
    #entry(account) {
        return this.#api.entry(this.#service, account, linuxStoreFor(this.kind));
    }
    get(account) {
        return bounded('reading the login', this.#timeoutMs, (signal) => this.#entry(account).getPassword(signal));
    }
    set(account, value) {
        return bounded('saving the login', this.#timeoutMs, (signal) => this.#entry(account).setPassword(value, signal));
    }
    delete(account) {
        return bounded('deleting the login', this.#timeoutMs, (signal) => this.#entry(account).deleteCredential(signal));
    }
}
function platformKinds(platform) {
    if (platform === 'darwin')
        return ['macos-keychain'];
    if (platform === 'win32')
        return ['windows-credential-manager'];
    return ['secret-service', 'kernel-keyring'];
}
/** Write, read back and delete a probe item: "usable" then means what a login needs. */
async function writeProbe(store, account) {
    const probe = `probe:${account}`;
    const marker = `probe-${Date.now()}`;
    await store.set(probe, marker);
    const back = await store.get(probe);
    await store.delete(probe);
    if (back !== marker)
        throw new Error('the keychain did not return what was written');
}
export async function probeKeychain(api, platform, account, options = {}) {
    const reasons = [];
    const kinds = platformKinds(platform);
    for (const kind of kinds) {
        const store = new KeychainStore({
            api,
            kind,
            timeoutMs: options.timeoutMs ?? DEFAULT_KEYCHAIN_TIMEOUT_MS,
        });
        try {
            if (options.purpose === 'read') {
                // Reading our own item is the cheap probe for status and logout. A kernel keyring that finds
                // nothing may be one that refuses writes (containers), where a login would have gone to memory:
                // check writing then, so the store we name is the one a login would use.
                const found = await store.get(account);
                if (found === null && kind === 'kernel-keyring')
                    await writeProbe(store, account);
            }
            else {
                await writeProbe(store, account);
            }
            return { store, reasons };
        }
        catch (err) {
            const cause = err instanceof CliError && err.cause !== undefined ? err.cause : err;
            // The primary keychain is there but refuses (locked, unlock prompt dismissed): say so instead of
            // quietly falling back to a weaker store, which would also make `status` report "not logged in".
            // Hung, whichever timeout noticed first (D-Bus's own, or ours): the same words either way.
            if (kind === kinds[0] && (isNoReply(cause) || err instanceof KeychainTimeoutError)) {
                throw new CliError('error', `the OS keychain (${kind}) did not answer: locked behind a prompt nobody sees, or hung`, {
                    hint: 'unlock your keychain (an unlock prompt may be waiting) or restart it, or use `--storage memory`',
                    cause,
                });
            }
            if (kind === kinds[0] && isAccessRefused(cause)) {
                throw new CliError('error', `the OS keychain (${kind}) is locked or refused access: ${describeError(cause)}`, {
                    hint: 'unlock it (sign in to your desktop session or unlock the keyring), or use `--storage memory`',
                    cause,
                });
            }
            reasons.push(`${kind}: ${describeError(cause)}`);
        }
    }
    return { store: null, reasons };
}
