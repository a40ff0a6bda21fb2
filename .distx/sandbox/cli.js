/**
 * `npm run sandbox`: the sandbox control plane, kept running for a person to try the CLI against.
 * `npm run sandbox -- approve URL [alice|bob]` approves a device code without a browser.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approveDevice } from './approve.js';
import { USERS } from './idp.js';
import { startStack } from './stack.js';
async function approve(url, username = 'alice') {
    const user = USERS.find((u) => u.username === username);
    if (!url || !user) {
        process.stderr.write('usage: npm run sandbox -- approve VERIFICATION_URL [alice|bob]\n');
        return 2;
    }
    await approveDevice(url, { username: user.username, password: user.password });
    process.stderr.write(`Approved as ${user.username}.\n`);
    return 0;
}
async function serve() {
    // The sandbox's SSH key lives in a throwaway directory, not in your config or ~/.ssh.
    const keyDir = await mkdtemp(join(tmpdir(), 'mcp-secure-sandbox-'));
    const stack = await startStack({ configDir: keyDir, env: process.env, deviceInterval: 2 });
    const { idp, plane, bastion } = stack;
    const lines = [
        `Sandbox identity provider running at ${idp.issuer}`,
        `Sandbox bastion at ${bastion.username}@127.0.0.1:${bastion.port} (host key ${bastion.fingerprint}, pinned in the profile)`,
        stack.sshMode === 'certificate'
            ? "SSH: sshd trusts only the control plane's SSH CA; connect gets a short-lived certificate, no key file"
            : `SSH: the user key for it is ${stack.keyFile} (a throwaway directory)`,
        `In-cluster MCP server at ${plane.url} (a loopback port only the bastion is told about); tenants acme (alice, bob) and globex (alice)`,
        `Users: ${USERS.map((u) => `${u.username} / ${u.password}`).join(', ')}`,
        `Profile "sandbox" written to your mcp-secure config (\`npx mcp-secure --profile sandbox config\` shows it).`,
        '',
        'Try, in another terminal:',
        '  npx mcp-secure --profile sandbox login            # browser (PKCE) where one can open, else a device code',
        '  npx mcp-secure --profile sandbox login --device   # device code: open the URL it prints, sign in as alice',
        '  npx mcp-secure --profile sandbox token --tenant acme',
        '  npx mcp-secure --profile sandbox connect --tenant acme   # then point an MCP client at http://127.0.0.1:7700/mcp',
        '  npx mcp-secure --profile sandbox status',
        '  npx mcp-secure --profile sandbox logout',
        '',
        'No browser at hand? Approve a device code headlessly:',
        '  npm run sandbox -- approve VERIFICATION_URL alice',
        '',
        'Press Ctrl-C to stop.',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    await new Promise((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
    });
    await stack.close();
    await rm(keyDir, { recursive: true, force: true });
}
const [command, ...rest] = process.argv.slice(2);
if (command === 'approve') {
    process.exitCode = await approve(rest[0], rest[1]);
}
else {
    await serve();
}
