/** A private tmux server for tests (its own socket), running the real CLI on a real terminal. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BIN } from './cli.js';

const exec = promisify(execFile);

export interface Tmux {
  run(...args: string[]): Promise<{ stdout: string }>;
  /** Starts session `name` running `mcp-secure ARGS` with exactly `env`; the pane stays open afterwards. */
  start(name: string, env: Record<string, string>, args: string[], options?: { cwd?: string }): Promise<void>;
  /** The pane's text once it matches `pattern` (polled, bounded to 30 s), or its last text. */
  waitFor(target: string, pattern: RegExp, history?: number): Promise<string>;
  kill(): Promise<void>;
}

/** `name` is suffixed with this process's pid: two test runs on one machine never share a tmux server. */
export function tmuxServer(name: string): Tmux {
  const socket = name.endsWith(`-${process.pid}`) ? name : `${name}-${process.pid}`;
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
      // Bounded by count and by time: 30 s, what a loaded machine may need to start the CLI and dial.
      const deadline = Date.now() + 30_000;
      for (let i = 0; i < 300 && !pattern.test(screen) && Date.now() < deadline; i++) {
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
