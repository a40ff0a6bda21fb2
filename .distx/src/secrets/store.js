export const STORE_DESCRIPTIONS = {
    'secret-service': 'OS keychain (Secret Service)',
    'kernel-keyring': 'Linux kernel keyring (in memory, lost at reboot)',
    'macos-keychain': 'OS keychain (macOS Keychain)',
    'windows-credential-manager': 'OS keychain (Windows Credential Manager)',
    memory: "memory only (the agent's; lost when it ends)",
};
/** Whether a login stored here survives this process. */
export function isPersistent(kind) {
    return kind !== 'memory';
}
