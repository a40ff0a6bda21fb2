/**
 * Where secrets live. The refresh token (and what is needed to use it) goes to the OS keychain; where
 * there is none it is held in memory only. There is no plaintext file backend, not even as a fallback.
 */
export type StoreKind =
  | 'secret-service'
  | 'kernel-keyring'
  | 'macos-keychain'
  | 'windows-credential-manager'
  | 'memory';

export type StorageChoice = 'auto' | 'keychain' | 'memory';

export interface TokenStore {
  readonly kind: StoreKind;
  /** get/set/delete take an account name (the profile); each call is bounded in time. */
  get(account: string): Promise<string | null>;
  set(account: string, value: string): Promise<void>;
  delete(account: string): Promise<boolean>;
}

export const STORE_DESCRIPTIONS: Readonly<Record<StoreKind, string>> = {
  'secret-service': 'OS keychain (Secret Service)',
  'kernel-keyring': 'Linux kernel keyring (in memory, lost at reboot)',
  'macos-keychain': 'OS keychain (macOS Keychain)',
  'windows-credential-manager': 'OS keychain (Windows Credential Manager)',
  memory: "memory only (the agent's; lost when it ends)",
};

/** Whether a login stored here survives this process. */
export function isPersistent(kind: StoreKind): boolean {
  return kind !== 'memory';
}
