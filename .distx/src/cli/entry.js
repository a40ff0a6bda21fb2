/** What bin/mcp-secure.js needs, bundled into dist/cli/main.js (see scripts/bundle.js). */
export { createDeps } from './deps.js';
export { excludeMemoryFromCoreDumps } from './hardening.js';
export { main } from './main.js';
