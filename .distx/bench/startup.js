/**
 * Start-up time of the CLI next to Node's own, in the same run: `node -e 0`, `mcp-secure --help`,
 * `mcp-secure status` (memory storage and no agent running; and with the store the environment offers,
 * which the agent started by the first run reads: the CLI itself never loads the keychain binding). Runs are interleaved so machine noise hits every command alike; we report
 * medians, the 10th–90th percentile spread and the difference from `node -e 0`.
 * Usage: npm run bench:startup [-- RUNS] [-- --json FILE]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
const BIN = fileURLToPath(new URL('../../bin/mcp-secure.js', import.meta.url));
const argv = process.argv.slice(2);
const jsonAt = argv.indexOf('--json');
const jsonFile = jsonAt >= 0 ? argv.splice(jsonAt, 2)[1] : undefined;
const runs = Math.max(3, Math.min(Number(argv[0] ?? 30), 500));
const configDir = mkdtempSync(join(tmpdir(), 'mcp-secure-bench-'));
const env = { ...process.env, MCP_SECURE_CONFIG_DIR: configDir, NO_COLOR: '1' };
const commands = [
    { name: 'node -e 0', args: ['-e', '0'] },
    { name: 'mcp-secure --help', args: [BIN, '--help'] },
    {
        name: 'mcp-secure status (memory)',
        args: [BIN, 'status'],
        env: { ...env, MCP_SECURE_STORAGE: 'memory' },
    },
    { name: 'mcp-secure status (auto store)', args: [BIN, 'status'] },
];
const times = new Map(commands.map((c) => [c.name, []]));
for (let i = 0; i < runs + 2; i++) {
    for (const c of commands) {
        const started = process.hrtime.bigint();
        spawnSync(process.execPath, c.args, { env: c.env ?? env, stdio: 'ignore' });
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (i >= 2)
            times.get(c.name)?.push(ms); // two warm-up rounds fill the page cache
    }
}
// `status` with the auto store started an agent (the one that reads the keychain, not this CLI).
spawnSync(process.execPath, [BIN, 'agent', 'stop'], { env, stdio: 'ignore' });
rmSync(configDir, { recursive: true, force: true });
const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Nearest-rank percentile. */
const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
};
const base = median(times.get('node -e 0'));
process.stdout.write(`start-up, ${runs} interleaved runs each, medians (${process.version}, ${process.platform})\n`);
const rows = [];
for (const c of commands) {
    const xs = times.get(c.name);
    const m = median(xs);
    const delta = m - base;
    rows.push({ name: c.name, median_ms: m, p10_ms: pct(xs, 0.1), p90_ms: pct(xs, 0.9), vs_node_ms: delta });
    process.stdout.write(`${c.name.padEnd(32)} ${m.toFixed(1).padStart(7)} ms  (p10–p90 ${pct(xs, 0.1).toFixed(1)}–${pct(xs, 0.9).toFixed(1)})   ${c.name === 'node -e 0' ? '' : `+${delta.toFixed(1)} ms vs node (x${(m / base).toFixed(2)})`}\n`);
}
if (jsonFile) {
    writeFileSync(jsonFile, `${JSON.stringify({ bench: 'startup', date: new Date().toISOString(), node: process.version, runs, rows }, null, 2)}\n`);
}
