/** What the login flows need from the terminal: they never print themselves. */
export interface DeviceCodeInfo {
  verificationUri: string;
  verificationUriComplete: string | undefined;
  userCode: string;
  expiresInSeconds: number;
}

export interface Waiting {
  stop(): void;
}

export interface LoginUi {
  showDeviceCode(info: DeviceCodeInfo): void | Promise<void>;
  /** `redirectUri`: the exact loopback redirect URI of this login; `fixed` when it is a configured port. */
  showBrowserUrl(url: string, opened: boolean, redirect?: { uri: string; fixed: boolean }): void;
  waiting(text: string): Waiting;
  debug(line: string): void;
  /** Something the user should know about the login that does not stop it. */
  warn(line: string): void;
}

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
