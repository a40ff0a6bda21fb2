/**
 * peer.ts: addresses as the kernel prints them, the owner of a real loopback connection (IPv4, IPv6 and
 * IPv4-mapped), and one read of the table shared by a burst of accepts.
 */
import assert from 'node:assert/strict';
import { createServer, connect as netConnect } from 'node:net';
import { endianness } from 'node:os';
import { test } from 'node:test';
import { PeerTable, procAddress } from '../../src/peer.js';
const linux = process.platform === 'linux' ? undefined : 'needs Linux /proc/net/tcp';
test('addresses as /proc/net/tcp{,6} print them (host byte order per 32-bit word)', {
    skip: endianness() !== 'LE' ? 'little-endian only' : undefined,
}, () => {
    const cases = [
        ['127.0.0.1', 'v4', '0100007F'],
        ['10.1.2.3', 'v4', '0302010A'],
        ['::1', 'v6', '00000000000000000000000001000000'],
        ['::ffff:127.0.0.1', 'v6', '0000000000000000FFFF00000100007F'],
        ['fe80::1%lo', 'v6', '000080FE000000000000000001000000'],
    ];
    for (const [address, family, printed] of cases)
        assert.equal(procAddress(address, family), printed, address);
    assert.equal(procAddress('not-an-address', 'v4'), undefined);
    assert.equal(procAddress('1::2::3', 'v6'), undefined);
});
/** A server on `host`; resolves with the server-side socket of one connection from `from` (or default). */
async function accepted(host, connectTo = host) {
    const server = createServer({ pauseOnConnect: true });
    await new Promise((r) => server.listen(0, host, r));
    const port = server.address().port;
    const got = new Promise((r) => server.once('connection', r));
    const client = netConnect(port, connectTo);
    const socket = await got;
    return {
        socket,
        close() {
            client.destroy();
            socket.destroy();
            server.close();
        },
    };
}
for (const [name, host, to] of [
    ['IPv4', '127.0.0.1', '127.0.0.1'],
    ['IPv6', '::1', '::1'],
    ['IPv4 to a dual-stack listener (the peer is named ::ffff:127.0.0.1)', '::', '127.0.0.1'],
]) {
    test(`a real loopback connection over ${name}: its peer socket is ours`, { skip: linux }, async (t) => {
        const c = await accepted(host, to).catch((err) => err);
        if (c instanceof Error) {
            t.skip(`cannot listen on ${host}: ${c.message}`);
            return;
        }
        try {
            const owner = await new PeerTable().owner(c.socket);
            assert.deepEqual(owner.known && owner.uid, process.getuid());
        }
        finally {
            c.close();
        }
    });
}
test('a burst of accepts shares reads of the table; a line not found is looked for once more, then unknown', async () => {
    const line = (sl, localPort, uid, inode) => `${String(sl).padStart(4)}: 0100007F:${localPort.toString(16).toUpperCase().padStart(4, '0')} 0100007F:1E14 01 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 ${inode} 1 0000000000000000 20 4 30 10 -1\n`;
    const table = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n' +
        line(0, 40001, 1000, '111') +
        line(1, 40002, 65534, '222') +
        // TIME_WAIT: no socket any process holds (inode 0).
        line(2, 40003, 0, '0');
    const reads = [];
    const peers = new PeerTable({
        readText: async (path) => {
            reads.push(path);
            return path.endsWith('tcp') ? table : '';
        },
    });
    const ends = (port) => ({
        remoteAddress: '127.0.0.1',
        remotePort: port,
        localAddress: '127.0.0.1',
        localPort: 7700,
    });
    const owners = await Promise.all([40001, 40002, 40003, 40004].map((p) => peers.owner(ends(p))));
    assert.deepEqual(owners, [
        { known: true, uid: 1000, inode: '111' },
        { known: true, uid: 65534, inode: '222' },
        { known: false, reason: 'not-found' },
        { known: false, reason: 'not-found' },
    ]);
    // Four connections: one read of tcp for all, tcp6 for the v4-mapped form of the two not found, and the
    // second look for those two (tcp, tcp6) — not one read per connection per table.
    assert.deepEqual(reads, ['/proc/net/tcp', '/proc/net/tcp6', '/proc/net/tcp', '/proc/net/tcp6']);
    assert.deepEqual(await peers.owner({ remoteAddress: undefined }), { known: false, reason: 'no-address' });
});
