/** A private tmux server for tests (its own socket), running the real CLI on a real terminal. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BIN } from './cli.js';

const exec = promisify(execFile);

export interface Tmux {
  run(...args: string[]): Promise<{ stdout: string }>;
  /** Starts session `name` running `mcp-secure ARGS` with exactly `env`; the pane stays open afterwards. */
  start(name: string, env: Record<string, string>, args: string[], options?: { cwd?: string }): Promise<void>;
  /** The pane's text once it matches `pattern` (polled, bounded to ~10 s), or its last text. */
  waitFor(target: string, pattern: RegExp, history?: number): Promise<string>;
  kill(): Promise<void>;
}

export function tmuxServer(socket: string): Tmux {
  const run = (...args: string[]) => exec('tmux', ['-L', socket, ...args]);
  return {
    run,
    async start(name, env, args, options = {}) {
      const vars = Object.entries(env)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(' ');
      const cd = options.cwd ? `cd ${JSON.stringify(options.cwd)} && ` : '';
      const command = `${cd}env ${vars} ${process.execPath} ${BIN} ${args.join(' ')}; echo "exit $?"; sleep 30`;
      await run('new-session', '-d', '-s', name, '-x', '200', '-y', '50', command);
    },
    async waitFor(target, pattern, history = 200) {
      let screen = '';
      for (let i = 0; i < 100 && !pattern.test(screen); i++) {
        await new Promise((r) => setTimeout(r, 100));
        screen = (await run('capture-pane', '-p', '-J', '-t', target, '-S', `-${history}`)).stdout;
      }
      return screen;
    },
    async kill() {
      await run('kill-server').catch(() => undefined);
    },
  };
}
