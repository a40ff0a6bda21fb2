/**
 * The one injected Deps object (gh's IOStreams, the MCP SDK's HostUI): everything a command touches in the
 * outside world. Tests pass fakes for the clock and the terminal and real servers for the network.
 * The real one is made by cli/deps.ts, the composition root.
 */
import type { KeychainApi } from './secrets/keychain.js';

export interface Deps {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  stdinIsTTY: boolean;
  env: Readonly<Record<string, string | undefined>>;
  platform: NodeJS.Platform;
  homedir: string;
  cwd: string;
  configDir: string;
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  fetch: typeof globalThis.fetch;
  /** Opens a URL in the user's browser; resolves false when no browser could be started. */
  openUrl(url: string): Promise<boolean>;
  /** Asks a question on the terminal; `secret` turns echo off. Only call when `stdinIsTTY`. */
  prompt(question: string, options?: { secret?: boolean }): Promise<string>;
  /** The OS keychain binding, loaded on first use. */
  keychain(): Promise<KeychainApi>;
  /** Aborted on Ctrl-C (SIGINT), SIGTERM or SIGHUP (bin/mcp-secure.js sets the exit code per signal). */
  signal: AbortSignal;
  /** The command that runs this CLI again (node and the entry script), for `--audit-pane`. */
  self: string[];
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
