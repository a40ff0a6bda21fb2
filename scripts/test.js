// Runs every dist/test/**/*.test.js with node's test runner. Node 20 takes no globs and, given a
// directory, would run every .js file in it, helpers included.
// dist/test/e2e-long holds the tests that need root or minutes (`npm run test:e2e`): `--long` runs those
// and only those, one file at a time; without it they are left out.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const long = args.includes('--long');
const LONG_DIR = join('e2e-long', '');
const files = readdirSync('dist/test', { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.test.js') && f.startsWith(LONG_DIR) === long)
  .map((f) => join('dist/test', f))
  .sort();
if (files.length === 0) {
  process.stderr.write('no test files under dist/test: run `npm run build` first\n');
  process.exit(1);
}
// Which Node runs the tests (.ci/run runs them on several): the runner and every process the tests start.
process.stderr.write(
  `# node ${process.version} (${process.execPath})${process.env.MCP_SECURE_TEST_STRICT === '1' ? '; MCP_SECURE_TEST_STRICT=1: a missing system package fails its tests' : ''}\n`,
);
// --test-timeout bounds each test AND each file as a whole (node runs a file as one test, its tests inside):
// it is only the net for a hang, since every wait in the tests has its own bound. 180 s was the whole of
// e2e/connect.test.js on a loaded machine (it timed out there at 180 s, its tests all passing), so 600 s.
const result = spawnSync(
  process.execPath,
  [
    '--test',
    `--test-concurrency=${long ? 1 : 2}`,
    '--test-timeout=600000',
    ...args.filter((a) => a !== '--long'),
    ...files,
  ],
  {
    stdio: 'inherit',
  },
);
process.exit(result.status ?? 1);
