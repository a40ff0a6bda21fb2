/**
 * Network namespaces for the end-to-end test over a real network path: a "laptop", a "bastion" and a
 * "cluster" namespace joined by two veth pairs, created inside the namespaces themselves (nothing is added
 * to the host's own network: no interface, no address, no route, no listener). Needs root and iproute2.
 *
 *   laptop 10.231.1.2 ── veth ── 10.231.1.1 bastion 10.231.2.1 ── veth ── 10.231.2.2 cluster
 *
 * No routes beyond the two connected subnets and no IP forwarding: the laptop cannot send a packet to the
 * cluster at all; only the bastion can, and only because it sits on both links.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
const run = promisify(execFile);
export const PREFIX = 'mcp-secure-e2e-';
export const ADDR = {
    laptop: '10.231.1.2',
    bastionLaptopSide: '10.231.1.1',
    bastionClusterSide: '10.231.2.1',
    cluster: '10.231.2.2',
};
/** The bastion's interface towards the laptop (in the bastion namespace): the link the test cuts. */
export const BASTION_LAPTOP_LINK = 'to-laptop';
async function ip(...args) {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
}
/**
 * Why the topology cannot be built here, or undefined when it can: tried for real (a namespace, a veth pair
 * inside it, a command run in it), then removed. A container without the capability fails one of these.
 */
export async function netnsUnavailable() {
    if (process.platform !== 'linux')
        return 'network namespaces are a Linux feature';
    if (process.getuid?.() !== 0)
        return 'creating network namespaces needs root';
    const probe = `${PREFIX}probe-${process.pid}`;
    const steps = [
        ['`ip netns add`', ['netns', 'add', probe]],
        ['a veth pair', ['-n', probe, 'link', 'add', 'probe-a', 'type', 'veth', 'peer', 'name', 'probe-b']],
        ['`ip netns exec`', ['netns', 'exec', probe, 'true']],
    ];
    try {
        for (const [what, args] of steps) {
            try {
                await ip(...args);
            }
            catch (err) {
                return `${what} failed: ${(err.message.split('\n')[1] ?? err.message).trim()}`;
            }
        }
        return undefined;
    }
    finally {
        await ip('netns', 'del', probe).catch(() => undefined);
    }
}
/** Our namespaces left behind by a run that died before its cleanup (its pid is gone). */
export async function removeStale() {
    const list = await ip('netns', 'list').catch(() => '');
    const removed = [];
    for (const line of list.split('\n')) {
        const name = line.split(' ')[0] ?? '';
        const m = name.startsWith(PREFIX) ? /-(\d+)-[a-z]+$/.exec(name) : null;
        if (!m)
            continue;
        const pid = Number(m[1]);
        if (pid !== process.pid && alive(pid))
            continue; // another run, still going
        await ip('netns', 'del', name).catch(() => undefined);
        removed.push(name);
    }
    return removed;
}
function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    }
    catch {
        return false;
    }
}
export async function createTopology() {
    const ns = {
        laptop: `${PREFIX}${process.pid}-laptop`,
        bastion: `${PREFIX}${process.pid}-bastion`,
        cluster: `${PREFIX}${process.pid}-cluster`,
    };
    const created = [];
    const remove = async () => {
        for (const name of created.splice(0).reverse())
            await ip('netns', 'del', name).catch(() => undefined);
    };
    try {
        for (const name of Object.values(ns)) {
            await ip('netns', 'add', name);
            created.push(name);
            await ip('-n', name, 'link', 'set', 'lo', 'up');
        }
        // Each pair is created inside the namespaces, so the host never holds either end, even for a moment.
        await ip('-n', ns.laptop, 'link', 'add', 'to-bastion', 'type', 'veth', 'peer', 'name', BASTION_LAPTOP_LINK, 'netns', ns.bastion);
        await ip('-n', ns.bastion, 'link', 'add', 'to-cluster', 'type', 'veth', 'peer', 'name', 'to-bastion', 'netns', ns.cluster);
        const addresses = [
            [ns.laptop, 'to-bastion', ADDR.laptop],
            [ns.bastion, BASTION_LAPTOP_LINK, ADDR.bastionLaptopSide],
            [ns.bastion, 'to-cluster', ADDR.bastionClusterSide],
            [ns.cluster, 'to-bastion', ADDR.cluster],
        ];
        for (const [name, dev, addr] of addresses) {
            await ip('-n', name, 'addr', 'add', `${addr}/24`, 'dev', dev);
            await ip('-n', name, 'link', 'set', dev, 'up');
        }
    }
    catch (err) {
        await remove();
        throw err;
    }
    return {
        ...ns,
        async setBastionLink(up) {
            await ip('-n', ns.bastion, 'link', 'set', BASTION_LAPTOP_LINK, up ? 'up' : 'down');
        },
        remove,
    };
}
/** The namespace names that exist now. */
export async function listNamespaces() {
    const list = await ip('netns', 'list').catch(() => '');
    return list
        .split('\n')
        .map((l) => l.split(' ')[0] ?? '')
        .filter(Boolean);
}
/** A command run inside a namespace (`ip netns exec` execs it: the child's pid is the command's). */
export function spawnIn(netns, command, args, env = process.env) {
    return spawn('ip', ['netns', 'exec', netns, command, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
}
export async function startRole(netns, script, role, config, timeoutMs = 60_000) {
    const child = spawnIn(netns, process.execPath, [script, role]);
    let err = '';
    child.stderr.on('data', (d) => {
        err = (err + d.toString()).slice(-8000);
    });
    const waiting = new Map();
    const failAll = (e) => {
        for (const w of waiting.values())
            w.reject(e);
        waiting.clear();
    };
    let buf = '';
    child.stdout.on('data', (d) => {
        buf += d.toString();
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const reply = JSON.parse(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            const w = waiting.get(reply['id']);
            waiting.delete(reply['id']);
            if (!w)
                continue;
            if (typeof reply['error'] === 'string')
                w.reject(new Error(`${role}: ${reply['error']}`));
            else
                w.resolve(reply);
        }
    });
    child.once('exit', (code, signal) => failAll(new Error(`${role} exited (${code ?? signal}); stderr: ${err}`)));
    let ids = 0;
    const ask = (id, line, waitMs) => new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            waiting.delete(id);
            reject(new Error(`${role}: no answer within ${waitMs} ms; stderr: ${err}`));
        }, waitMs);
        waiting.set(id, {
            resolve: (r) => {
                clearTimeout(timer);
                resolve(r);
            },
            reject: (e) => {
                clearTimeout(timer);
                reject(e);
            },
        });
        child.stdin.write(line);
    });
    let ready;
    try {
        // The ready line (or the error that prevented it) has no id.
        ready = await ask(undefined, `${JSON.stringify(config)}\n`, timeoutMs);
    }
    catch (e) {
        child.kill('SIGKILL');
        throw e;
    }
    return {
        child,
        ready,
        stderr: () => err,
        request(body, waitMs = 60_000) {
            const id = ++ids;
            return ask(id, `${JSON.stringify({ ...body, id })}\n`, waitMs);
        },
        async stop() {
            if (child.exitCode !== null || child.signalCode !== null)
                return;
            const exited = new Promise((resolve) => child.once('exit', () => resolve()));
            child.stdin.end(); // the role closes what it started and exits
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            await exited;
            clearTimeout(timer);
        },
    };
}
