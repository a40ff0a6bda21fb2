// Bundles the CLI into dist/cli/ so start-up reads a handful of files instead of dozens (commander alone
// is a CJS package of several files). Commands stay separate chunks, loaded only when run. Packages
// with native code or loaded late stay external. Measured by bench/startup.ts.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist/cli', { recursive: true, force: true }); // stale chunks from an earlier build

await build({
  entryPoints: { main: 'dist/src/cli/entry.js' },
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@napi-rs/keyring', 'jose', 'openid-client', 'ora', 'qrcode-terminal', 'ssh2'],
  // commander is CommonJS and calls require(); give the ESM bundle one.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
