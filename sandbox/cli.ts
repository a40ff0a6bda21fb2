/**
 * `npm run sandbox`: the sandbox control plane, kept running for a person to try the CLI against.
 * `npm run sandbox -- approve URL [alice|bob]` approves a device code without a browser.
 */
import { approveDevice } from './approve.js';
import { startIdp, USERS } from './idp.js';
import { writeSandboxProfile } from './profile.js';

async function approve(url: string | undefined, username = 'alice'): Promise<number> {
  const user = USERS.find((u) => u.username === username);
  if (!url || !user) {
    process.stderr.write('usage: npm run sandbox -- approve VERIFICATION_URL [alice|bob]\n');
    return 2;
  }
  await approveDevice(url, { username: user.username, password: user.password });
  process.stderr.write(`Approved as ${user.username}.\n`);
  return 0;
}

async function serve(): Promise<void> {
  const idp = await startIdp({ deviceInterval: 2 });
  await writeSandboxProfile(idp, process.env);
  const lines = [
    `Sandbox identity provider running at ${idp.issuer}`,
    `Users: ${USERS.map((u) => `${u.username} / ${u.password}`).join(', ')}`,
    `Profile "sandbox" written to your mcp-secure config (\`npx mcp-secure --profile sandbox config\` shows it).`,
    '',
    'Try, in another terminal:',
    '  npx mcp-secure --profile sandbox login            # browser (PKCE) where one can open, else a device code',
    '  npx mcp-secure --profile sandbox login --device   # device code: open the URL it prints, sign in as alice',
    '  npx mcp-secure --profile sandbox status',
    '  npx mcp-secure --profile sandbox logout',
    '',
    'No browser at hand? Approve a device code headlessly:',
    '  npm run sandbox -- approve VERIFICATION_URL alice',
    '',
    'Press Ctrl-C to stop.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await idp.close();
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'approve') {
  process.exitCode = await approve(rest[0], rest[1]);
} else {
  await serve();
}
