#!/usr/bin/env node
// Thin entry (gh's model): build the Deps, run, set the exit code. Everything else is in dist/cli.
import { createDeps, main } from '../dist/cli/main.js';

const controller = new AbortController();
let interrupts = 0;
const onSignal = (signal) => {
  interrupts += 1;
  // A second Ctrl-C means "now": the first one is already cancelling cleanly.
  if (interrupts > 1) process.exit(130);
  controller.abort(new Error(`interrupted by ${signal}`));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// `mcp-secure status | head -1`: a reader that goes away is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

process.exitCode = await main(process.argv.slice(2), createDeps(process, controller.signal));
process.removeListener('SIGINT', onSignal);
process.removeListener('SIGTERM', onSignal);
