/**
 * One place that knows which system package each test needs. A test that needs one is skipped where it is
 * missing, with a one-line reason naming the Debian package to install, so `npm test` on a machine with
 * nothing but Node passes:
 *
 *   const { test, before, after } = gate(requires('secret-service'));   // a whole file
 *   const withSshd = gate(requires('sshd')); withSshd.test('…', fn);    // some tests of a file
 *   test('…', { skip: requires('tmux') }, fn);                          // the plain node:test option
 *
 * Under MCP_SECURE_TEST_STRICT=1 (set by .ci/run, which installs every package) a missing package fails the
 * test instead: CI must run everything, and a skip there would hide that it did not. `requires()` used as a
 * plain `skip` option cannot fail a test, so it throws in strict mode (the file then fails as a whole).
 */
import * as nodeTest from 'node:test';
import { which } from '../../sandbox/which.js';

interface Need {
  /** Executables that must be on PATH. */
  programs: string[];
  /** What to install on Debian/Ubuntu. */
  packages: string;
  /** What the tests use it for, in the skip line. */
  purpose: string;
}

export const NEEDS = {
  sshd: {
    programs: ['sshd', 'ssh-keygen'],
    packages: 'openssh-server',
    purpose: 'OpenSSH sshd as a bastion',
  },
  ssh: {
    // ssh-keygen and ssh-agent are openssh-client's too (Debian), not openssh-server's.
    programs: ['ssh', 'ssh-add', 'ssh-agent', 'ssh-keygen'],
    packages: 'openssh-client',
    purpose: 'the OpenSSH client as the transport',
  },
  'secret-service': {
    programs: ['dbus-daemon', 'dbus-send', 'gnome-keyring-daemon'],
    packages: 'gnome-keyring dbus',
    purpose: 'a real Secret Service (gnome-keyring on a private D-Bus)',
  },
  'secret-tool': {
    programs: ['secret-tool'],
    packages: 'libsecret-tools',
    purpose: 'reading the keychain back',
  },
  chromium: {
    programs: ['chromium'],
    packages: 'chromium',
    purpose: 'a headless browser for the PKCE login',
  },
  tmux: { programs: ['tmux'], packages: 'tmux', purpose: 'a real terminal' },
  dropbear: {
    programs: ['dropbear', 'dropbearkey'],
    packages: 'dropbear-bin',
    purpose: 'dropbear as a second SSH server',
  },
  ip: { programs: ['ip'], packages: 'iproute2', purpose: 'network namespaces' },
  openssl: { programs: ['openssl'], packages: 'openssl', purpose: 'a private CA made at test time' },
} satisfies Record<string, Need>;

export type NeedName = keyof typeof NEEDS;

export const STRICT = process.env['MCP_SECURE_TEST_STRICT'] === '1';

/** Why a test needing `needs` cannot run here (one line naming what to install), or undefined when it can. */
export function missing(...needs: NeedName[]): string | undefined {
  const absent = needs.filter((n) => NEEDS[n].programs.some((p) => which(p) === undefined));
  if (absent.length === 0) return undefined;
  const packages = [...new Set(absent.flatMap((n) => NEEDS[n].packages.split(' ')))];
  const programs = [
    ...new Set(absent.flatMap((n) => NEEDS[n].programs.filter((p) => which(p) === undefined))),
  ];
  return `needs ${absent.map((n) => NEEDS[n].purpose).join(' and ')}: ${programs.join(', ')} not on PATH — install the Debian package${packages.length > 1 ? 's' : ''} ${packages.join(' ')} (apt-get install ${packages.join(' ')})`;
}

/** A skip reason for `{ skip: requires(...) }`; throws under MCP_SECURE_TEST_STRICT=1 when something is missing. */
export function requires(...needs: NeedName[]): string | undefined {
  const reason = missing(...needs);
  if (reason !== undefined && STRICT) throw new Error(strictMessage(reason));
  return reason;
}

function strictMessage(reason: string): string {
  return `MCP_SECURE_TEST_STRICT=1 forbids skipping: ${reason}`;
}

type TestFn = nodeTest.TestFn;
type HookFn = nodeTest.HookFn;

export interface Gated {
  test(name: string, fn: TestFn): void;
  test(name: string, options: nodeTest.TestOptions, fn: TestFn): void;
  before(fn: HookFn, options?: nodeTest.HookOptions): void;
  after(fn: HookFn, options?: nodeTest.HookOptions): void;
  beforeEach(fn: HookFn, options?: nodeTest.HookOptions): void;
  afterEach(fn: HookFn, options?: nodeTest.HookOptions): void;
  /** The reason these tests do not run here, or undefined. */
  skip: string | undefined;
}

/**
 * node:test's test and hooks, for tests that need what `reason` (from missing() or requires()) says is
 * absent: each test is skipped with that reason (or fails with it under MCP_SECURE_TEST_STRICT=1) and the
 * hooks, which would start the missing program, do not run. With no reason, they are node:test's own.
 */
export function gate(reason: string | undefined): Gated {
  const skip = reason === undefined || STRICT ? undefined : reason;
  if (reason === undefined) {
    return {
      test: nodeTest.test as Gated['test'],
      before: nodeTest.before,
      after: nodeTest.after,
      beforeEach: nodeTest.beforeEach,
      afterEach: nodeTest.afterEach,
      skip: undefined,
    };
  }
  const noHook = (): void => undefined;
  const failing: TestFn = () => {
    throw new Error(strictMessage(reason));
  };
  return {
    test(name: string, optionsOrFn: nodeTest.TestOptions | TestFn, maybeFn?: TestFn): void {
      const options = typeof optionsOrFn === 'function' ? {} : optionsOrFn;
      const fn = typeof optionsOrFn === 'function' ? optionsOrFn : maybeFn;
      if (fn === undefined) throw new TypeError('gate().test needs a function');
      if (STRICT) nodeTest.test(name, options, failing);
      else nodeTest.test(name, { ...options, skip }, fn);
    },
    before: noHook,
    after: noHook,
    beforeEach: noHook,
    afterEach: noHook,
    skip,
  };
}
