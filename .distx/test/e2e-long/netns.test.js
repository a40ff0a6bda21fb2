/**
 * End to end over a real network path (`npm run test:e2e`; needs root): a "laptop", a "bastion" and a
 * "cluster" network namespace joined by veth pairs (test/helpers/netns.ts). The MCP control plane listens on
 * the cluster's loopback only; the laptop cannot reach it, and neither can the bastion host; `mcp-secure
 * connect` on the laptop reaches it through OpenSSH on the bastion (jump) and OpenSSH in the cluster, the
 * cluster's loopback as seen from the cluster host. Then the bastion's link to the laptop is cut and
 * restored: the supervisor notices the dead path (keepalives), re-dials, and the local port keeps serving.
 * Everything the test created (namespaces, veth pairs, processes, temp dirs) is removed at the end.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { generateUserKey } from '../../sandbox/bastion.js';
import { startCli } from '../helpers/cli.js';
import { ADDR, createTopology, listNamespaces, netnsUnavailable, PREFIX, removeStale, startRole, } from '../helpers/netns.js';
import { gate, missing } from '../helpers/requires.js';
const ROLE_SCRIPT = fileURLToPath(new URL('../helpers/netns-role.js', import.meta.url));
const IDP_PORT = 8080;
// A missing package (iproute2, openssh-server) is a skip that MCP_SECURE_TEST_STRICT=1 turns into a failure;
// no root or no namespaces here (a container without CAP_SYS_ADMIN) is a plain skip: no package fixes it.
const packages = missing('ip', 'sshd');
const { after, before, test } = gate(packages);
const skip = packages === undefined ? await netnsUnavailable() : undefined;
if (skip)
    process.stdout.write(`# skipping the network-namespace test: ${skip}\n`);
let topo;
const roles = [];
let edge;
let cluster;
let laptop;
let laptopEnv;
let planePort;
let connectRun;
let local;
before(async () => {
    if (skip)
        return;
    await removeStale();
    topo = await createTopology();
    const key = generateUserKey('mcp-secure-netns');
    edge = await startRole(topo.bastion, ROLE_SCRIPT, 'edge', {
        idpPort: IDP_PORT,
        userPublicKey: key.publicKey,
        clusterAddress: ADDR.cluster,
        listenAddress: ADDR.bastionLaptopSide,
    });
    roles.push(edge);
    cluster = await startRole(topo.cluster, ROLE_SCRIPT, 'cluster', {
        idpPort: IDP_PORT,
        idpAddress: ADDR.bastionClusterSide,
        audience: edge.ready['mcpResource'],
        userPublicKey: key.publicKey,
        listenAddress: ADDR.cluster,
    });
    roles.push(cluster);
    planePort = Number(cluster.ready['planePort']);
    laptop = await startRole(topo.laptop, ROLE_SCRIPT, 'laptop', {
        idpPort: IDP_PORT,
        idpAddress: ADDR.bastionLaptopSide,
        clientId: edge.ready['clientId'],
        mcpResource: edge.ready['mcpResource'],
        userPrivateKey: key.privateKey,
        jump: `${String(edge.ready['user'])}@${ADDR.bastionLaptopSide}:22`,
        bastion: `${String(cluster.ready['user'])}@${ADDR.cluster}:22`,
        fingerprints: `${ADDR.bastionLaptopSide}=${String(edge.ready['fingerprint'])} ${ADDR.cluster}=${String(cluster.ready['fingerprint'])}`,
        // As the cluster host sees it: its own loopback.
        mcpUrl: cluster.ready['mcpUrl'],
    });
    roles.push(laptop);
    laptopEnv = laptop.ready['env'];
});
after(async () => {
    if (skip)
        return;
    connectRun?.child.kill('SIGKILL');
    await connectRun?.done;
    for (const r of roles.reverse())
        await r.stop();
    await topo?.remove();
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${PREFIX}${process.pid}-`));
    assert.deepEqual(left, [], 'every namespace the test created is gone');
});
test('the MCP server is on the cluster loopback: unreachable from the laptop and from the bastion host', {
    skip,
}, async () => {
    // The probe can succeed: from the cluster host itself the server answers.
    assert.equal((await cluster.request({ op: 'probe', host: '127.0.0.1', port: planePort }))['outcome'], 'connected');
    // The laptop has no route to the cluster at all, and the port is not on its own loopback.
    const direct = await laptop.request({ op: 'probe', host: ADDR.cluster, port: planePort });
    assert.notEqual(direct['outcome'], 'connected');
    const ownLoopback = await laptop.request({ op: 'probe', host: '127.0.0.1', port: planePort });
    assert.equal(ownLoopback['outcome'], 'ECONNREFUSED');
    // The bastion host routes to the cluster, yet nothing answers on the cluster's address: loopback only.
    const fromBastion = await edge.request({ op: 'probe', host: ADDR.cluster, port: planePort });
    assert.equal(fromBastion['outcome'], 'ECONNREFUSED');
    // What the laptop may reach on the bastion: SSH (and the IdP), nothing else.
    assert.equal((await laptop.request({ op: 'probe', host: ADDR.bastionLaptopSide, port: 22 }))['outcome'], 'connected');
});
test('through `mcp-secure connect` via the bastion, the laptop reaches it', { skip }, async () => {
    connectRun = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], laptopEnv, 170_000, {
        netns: topo.laptop,
    });
    connectRun.child.stdin.end();
    const [, url] = await connectRun.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 40_000);
    local = url;
    assert.match(connectRun.stderr(), new RegExp(`SSH: \\S+@${ADDR.bastionLaptopSide.replace(/\./g, '\\.')}(:22)? → \\S+@${ADDR.cluster.replace(/\./g, '\\.')}`));
    const who = await laptop.request({ op: 'call', url: local, tool: 'whoami' });
    assert.equal(who['failed'], undefined, String(who['failed']));
    assert.match(String(who['text']), /acme/);
    const own = await laptop.request({ op: 'call', url: local, tool: 'list_workflows' });
    assert.match(String(own['text']), /wf-acme-deploy/);
    const seen = (await cluster.request({ op: 'records' }))['records'];
    assert.ok(seen.some((r) => r.tenant === 'acme' && r.tool === 'list_workflows'), 'the call reached the cluster');
});
test("the bastion's link goes down and up: the supervisor re-dials over the real path; the local port stays", {
    skip,
}, async () => {
    assert.ok(connectRun && local, 'connect is running');
    const run = connectRun;
    await topo.setBastionLink(false);
    const downAt = Date.now();
    // No RST, no FIN: only keepalives (ServerAliveInterval 1, ServerAliveCountMax 3) tell the path is dead.
    await run.waitFor(/SSH connection lost/, 20_000);
    const noticedMs = Date.now() - downAt;
    // A call made while the path is down waits for the re-dial instead of failing.
    const pending = laptop.request({ op: 'call', url: local, tool: 'whoami' }, 60_000);
    await new Promise((r) => setTimeout(r, 2_000));
    const portUp = await laptop.request({ op: 'probe', host: '127.0.0.1', port: Number(new URL(local).port) });
    assert.equal(portUp['outcome'], 'connected', 'the local port stays open while the tunnel is down');
    await topo.setBastionLink(true);
    const upAt = Date.now();
    await run.waitFor(/SSH connection re-established/, 40_000);
    const recoveredMs = Date.now() - upAt;
    const during = await pending;
    assert.equal(during['failed'], undefined, `the waiting call failed: ${String(during['failed'])}`);
    assert.match(String(during['text']), /acme/);
    const afterwards = await laptop.request({ op: 'call', url: local, tool: 'list_workflows' });
    assert.match(String(afterwards['text']), /wf-acme/);
    process.stdout.write(`# netns: dead path noticed after ${(noticedMs / 1000).toFixed(1)} s; tunnel back ${(recoveredMs / 1000).toFixed(1)} s after the link came up\n`);
    run.child.kill('SIGINT');
    const result = await run.done;
    connectRun = undefined;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /[1-9]\d* re-dials/);
});
