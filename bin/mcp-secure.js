#!/usr/bin/env node
// Thin entry (gh's model): build the Deps, run, set the exit code. Everything else is in dist/cli.
import { createDeps, excludeMemoryFromCoreDumps, main } from '../dist/cli/main.js';

// Before any token or key is in memory: a crash must not write them into a core file (docs/security.md).
excludeMemoryFromCoreDumps(process.platform);

// Each signal ends the command cleanly (listener closed, nothing half-written) with the code a shell
// reports for a process that signal killed (128 + its number): scripts see the same either way.
// SIGHUP is the terminal going away (a closed tab, a dropped SSH session).
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
const controller = new AbortController();
let received;
const onSignal = (signal) => {
  // A second signal means "now": the first one is already cancelling cleanly.
  if (received) process.exit(SIGNAL_EXIT[signal]);
  received = signal;
  controller.abort(new Error(`interrupted by ${signal}`));
};
for (const signal of Object.keys(SIGNAL_EXIT)) process.on(signal, onSignal);
// `mcp-secure status | head -1`: a reader that goes away is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const code = await main(process.argv.slice(2), createDeps(process, controller.signal));
// 130 is main's "interrupted"; which signal it was decides the code.
process.exitCode = code === 130 && received ? SIGNAL_EXIT[received] : code;
for (const signal of Object.keys(SIGNAL_EXIT)) process.removeListener(signal, onSignal);
