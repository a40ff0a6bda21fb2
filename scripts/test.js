// Runs every dist/test/**/*.test.js with node's test runner. Node 20 takes no globs and, given a
// directory, would run every .js file in it, helpers included.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const files = readdirSync('dist/test', { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.test.js'))
  .map((f) => join('dist/test', f))
  .sort();
if (files.length === 0) {
  process.stderr.write('no test files under dist/test: run `npm run build` first\n');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=180000', ...process.argv.slice(2), ...files],
  {
    stdio: 'inherit',
  },
);
process.exit(result.status ?? 1);
