import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exportJWK, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { approveDevice } from '../../sandbox/approve.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { accessTokenHash } from '../../sandbox/dpop-proof.js';
import { HARDWARE_KEY_ACR, startIdp, TOKEN_EXCHANGE_GRANT } from '../../sandbox/idp.js';
const SCOPE = 'openid offline_access profile email';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const INITIALIZE = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};
let idp;
let config;
let cp;
const tokens = { acme: '', globex: '', bobAcme: '', admin: '', bound: '' };
let dpopKey;
before(async () => {
    idp = await startIdp();
    config = await oidc.discovery(new URL(idp.issuer), idp.clientId, undefined, oidc.None(), {
        execute: [oidc.allowInsecureRequests],
    });
    cp = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
    const alice = await deviceLogin('alice');
    tokens.acme = await exchange(alice, { tenant: 'acme' });
    tokens.globex = await exchange(alice, { tenant: 'globex' });
    tokens.bobAcme = await exchange(await deviceLogin('bob'), { tenant: 'acme' });
    const stepped = await deviceLogin('alice', { acr_values: HARDWARE_KEY_ACR, max_age: '0' });
    tokens.admin = await exchange(stepped, { tenant: 'acme', role: 'admin' });
    const pair = await oidc.randomDPoPKeyPair('ES256');
    dpopKey = { pair, jwk: await exportJWK(pair.publicKey), handle: oidc.getDPoPHandle(config, pair) };
    tokens.bound = await exchange(alice, { tenant: 'acme' }, dpopKey.handle);
});
after(async () => {
    await cp?.close();
    await idp?.close();
});
/** Device login approved headlessly before the first poll; answers the IdP access token. */
async function deviceLogin(username, params = {}) {
    const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE, ...params });
    assert.ok(da.verification_uri_complete);
    await approveDevice(da.verification_uri_complete, { username, password: `${username}-password` });
    return (await oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: da.device_code })).access_token;
}
async function exchange(subject, params, dpop) {
    const answer = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE_GRANT, { subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: idp.mcpResource, ...params }, dpop ? { DPoP: dpop } : undefined);
    return answer.access_token;
}
/** A DPoP proof made by hand (RFC 9449 §4.2) for one request. */
function proof(method, htu, token, key = dpopKey) {
    return new SignJWT({ htm: method, htu, ath: accessTokenHash(token), jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
        .setIssuedAt()
        .sign(key.pair.privateKey);
}
/** The MCP SDK client over Streamable HTTP, with a Bearer header or a DPoP-signing fetch. */
async function connect(auth) {
    let transport;
    if ('bearer' in auth) {
        transport = new StreamableHTTPClientTransport(new URL(cp.url), {
            requestInit: { headers: { Authorization: `Bearer ${auth.bearer}` } },
        });
    }
    else {
        const signing = async (url, init) => {
            const headers = new Headers(init?.headers);
            headers.set('authorization', `DPoP ${auth.dpop}`);
            headers.set('dpop', await proof(init?.method ?? 'GET', String(url), auth.dpop));
            return fetch(url, { ...init, headers });
        };
        transport = new StreamableHTTPClientTransport(new URL(cp.url), { fetch: signing });
    }
    const client = new Client({ name: 'control-plane-test', version: '0.0.0' });
    await client.connect(transport);
    return { client, transport };
}
async function call(client, name, args = {}) {
    const result = (await client.callTool({ name, arguments: args }));
    const first = result.content[0];
    assert.ok(first?.type === 'text', 'a text result');
    return { isError: result.isError === true, text: first.text, data: result.structuredContent };
}
function workflowIds(data) {
    const workflows = data?.['workflows'];
    assert.ok(Array.isArray(workflows), 'a workflow list');
    return workflows.map((w) => w.id);
}
/** The records a block of code produced. */
async function recorded(fn) {
    const seen = [];
    const off = cp.onRecord((r) => seen.push(r));
    try {
        await fn();
    }
    finally {
        off();
    }
    return seen;
}
function strip(records) {
    return records.map(({ ts, ...rest }) => {
        assert.ok(!Number.isNaN(Date.parse(ts)), 'ts is an ISO date');
        return rest;
    });
}
function post(headers, body = INITIALIZE, path = '/mcp') {
    return fetch(new URL(path, cp.url), {
        method: 'POST',
        headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            ...headers,
        },
        body: JSON.stringify(body),
    });
}
test('a Bearer acme token: tools listed, own-tenant calls allowed and audited', async () => {
    const { client } = await connect({ bearer: tokens.acme });
    try {
        const { tools } = await client.listTools();
        assert.deepEqual(tools.map((t) => t.name).sort(), [
            'delete_workflow',
            'get_connection',
            'list_workflows',
            'run_workflow',
            'whoami',
        ]);
        const records = await recorded(async () => {
            // The tenant token carries no preferred_username, so the actor is the subject.
            assert.deepEqual((await call(client, 'whoami')).data, {
                tenant: 'acme',
                actor: 'alice-0001',
                roles: ['member'],
            });
            const list = await call(client, 'list_workflows');
            assert.equal(list.isError, false);
            assert.deepEqual(workflowIds(list.data), ['wf-acme-deploy', 'wf-acme-backup']);
            assert.deepEqual(JSON.parse(list.text), list.data, 'the text is the same data');
            const runA = await call(client, 'run_workflow', { workflow_id: 'wf-acme-deploy' });
            const runB = await call(client, 'run_workflow', { workflow_id: 'wf-acme-deploy', tenant: 'acme' });
            assert.match(String(runA.data?.['run_id']), /^run-\d{6}$/);
            assert.notEqual(runA.data?.['run_id'], runB.data?.['run_id']);
            const conn = await call(client, 'get_connection', { connection_id: 'conn-acme-postgres' });
            assert.deepEqual(conn.data, {
                id: 'conn-acme-postgres',
                name: 'Orders database',
                kind: 'postgres',
                tenant: 'acme',
            });
        });
        const base = { tenant: 'acme', actor: 'alice-0001', outcome: 'allowed' };
        assert.deepEqual(strip(records), [
            { ...base, tool: 'whoami', downstream: 'control-plane' },
            { ...base, tool: 'list_workflows', downstream: 'workflow-engine' },
            { ...base, tool: 'run_workflow', downstream: 'workflow-engine' },
            { ...base, tool: 'run_workflow', downstream: 'workflow-engine' },
            { ...base, tool: 'get_connection', downstream: 'connections-db' },
        ]);
    }
    finally {
        await client.close();
    }
});
test('cross-tenant reaches are denied and flagged; unknown objects are errors', async () => {
    const { client } = await connect({ bearer: tokens.acme });
    const globex = await connect({ bearer: tokens.globex });
    try {
        const records = await recorded(async () => {
            const cases = [
                [
                    'run_workflow',
                    { workflow_id: 'wf-globex-etl' },
                    'workflow wf-globex-etl belongs to another tenant',
                ],
                [
                    'get_connection',
                    { connection_id: 'conn-globex-s3' },
                    'connection conn-globex-s3 belongs to another tenant',
                ],
                [
                    'list_workflows',
                    { tenant: 'globex' },
                    'the workflow list of tenant globex belongs to another tenant',
                ],
                [
                    'run_workflow',
                    { workflow_id: 'wf-acme-deploy', tenant: 'globex' },
                    'workflow wf-acme-deploy of tenant globex belongs to another tenant',
                ],
            ];
            for (const [tool, args, reason] of cases) {
                const r = await call(client, tool, args);
                assert.equal(r.isError, true, tool);
                assert.equal(r.text, `denied: ${reason}`);
            }
            const unknown = await call(client, 'run_workflow', { workflow_id: 'wf-nope' });
            assert.deepEqual([unknown.isError, unknown.text], [true, 'error: workflow wf-nope not found']);
            // The same user with a globex token sees globex only.
            const list = await call(globex.client, 'list_workflows');
            assert.deepEqual(workflowIds(list.data), ['wf-globex-etl']);
            const r = await call(globex.client, 'get_connection', { connection_id: 'conn-acme-postgres' });
            assert.equal(r.text, 'denied: connection conn-acme-postgres belongs to another tenant');
        });
        const denied = (tool, downstream, reason, tenant = 'acme') => ({
            tenant,
            actor: 'alice-0001',
            tool,
            downstream,
            outcome: 'denied',
            reason,
            cross_tenant: true,
        });
        assert.deepEqual(strip(records), [
            denied('run_workflow', 'workflow-engine', 'workflow wf-globex-etl belongs to another tenant'),
            denied('get_connection', 'connections-db', 'connection conn-globex-s3 belongs to another tenant'),
            denied('list_workflows', 'workflow-engine', 'the workflow list of tenant globex belongs to another tenant'),
            denied('run_workflow', 'workflow-engine', 'workflow wf-acme-deploy of tenant globex belongs to another tenant'),
            {
                tenant: 'acme',
                actor: 'alice-0001',
                tool: 'run_workflow',
                downstream: 'workflow-engine',
                outcome: 'error',
                reason: 'workflow wf-nope not found',
            },
            {
                tenant: 'globex',
                actor: 'alice-0001',
                tool: 'list_workflows',
                downstream: 'workflow-engine',
                outcome: 'allowed',
            },
            denied('get_connection', 'connections-db', 'connection conn-acme-postgres belongs to another tenant', 'globex'),
        ]);
    }
    finally {
        await client.close();
        await globex.client.close();
    }
});
test('delete_workflow needs the admin role; an admin is still held to the tenant', async () => {
    const member = await connect({ bearer: tokens.acme });
    const admin = await connect({ bearer: tokens.admin });
    try {
        const records = await recorded(async () => {
            const refused = await call(member.client, 'delete_workflow', { workflow_id: 'wf-acme-backup' });
            assert.deepEqual([refused.isError, refused.text], [true, 'denied: admin role required']);
            const ok = await call(admin.client, 'delete_workflow', { workflow_id: 'wf-acme-backup' });
            assert.deepEqual(ok.data, { workflow_id: 'wf-acme-backup', deleted: true, simulated: true });
            const cross = await call(admin.client, 'delete_workflow', { workflow_id: 'wf-globex-etl' });
            assert.equal(cross.text, 'denied: workflow wf-globex-etl belongs to another tenant');
        });
        assert.deepEqual(strip(records).map((r) => [r.outcome, r.reason, r.cross_tenant]), [
            ['denied', 'admin role required', undefined],
            ['allowed', undefined, undefined],
            ['denied', 'workflow wf-globex-etl belongs to another tenant', true],
        ]);
        // Nothing is really deleted: the data stay the same for every test.
        const list = await call(member.client, 'list_workflows');
        assert.equal(workflowIds(list.data).length, 2);
    }
    finally {
        await member.client.close();
        await admin.client.close();
    }
});
test('no token, a foreign token, a bound token without its proof: 401 with a challenge, audited', async () => {
    const records = await recorded(async () => {
        const none = await post({});
        assert.equal(none.status, 401);
        assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
        assert.equal((await none.json()).error, 'invalid_token');
        const forged = await post({ authorization: `Bearer ${tokens.acme.slice(0, -4)}AAAA` });
        assert.equal(forged.status, 401);
        await forged.body?.cancel();
        const asBearer = await post({ authorization: `Bearer ${tokens.bound}` });
        assert.equal(asBearer.status, 401);
        assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP algs=/);
        await asBearer.body?.cancel();
        const noProof = await post({ authorization: `DPoP ${tokens.bound}` });
        assert.equal(noProof.status, 401);
        assert.equal((await noProof.json()).error, 'invalid_dpop_proof');
        // The SDK client gives up at connect.
        const transport = new StreamableHTTPClientTransport(new URL(cp.url));
        await assert.rejects(new Client({ name: 't', version: '0' }).connect(transport));
        await transport.close();
    });
    assert.equal(records.length, 5);
    for (const r of records) {
        assert.equal(r.tool, 'auth');
        assert.equal(r.downstream, 'control-plane');
        assert.equal(r.outcome, 'denied');
        assert.equal(r.tenant, '-');
        assert.equal(r.actor, '-');
        assert.ok(r.reason);
    }
    assert.equal(records[3]?.reason, 'a DPoP proof is required');
});
test('a DPoP-bound token: the SDK client with a fresh proof per request, htu the control plane URL', async () => {
    const { client, transport } = await connect({ dpop: tokens.bound });
    try {
        assert.deepEqual((await call(client, 'whoami')).data, {
            tenant: 'acme',
            actor: 'alice-0001',
            roles: ['member'],
        });
        assert.ok(transport.sessionId);
        await transport.terminateSession(); // DELETE /mcp, proof and all
    }
    finally {
        await client.close();
    }
    // The htu is this server's own URL whatever the Host header says (a tunnel's upstream name, say).
    const viaTunnel = (htu) => rawPost({ host: 'mcp.internal:4000', authorization: `DPoP ${tokens.bound}` }, htu);
    assert.equal((await viaTunnel('http://mcp.internal:4000/mcp')).status, 401);
    assert.equal((await viaTunnel(cp.url)).status, 200);
});
/** POST initialize with http.request, which lets the test set any Host header. */
async function rawPost(headers, htu) {
    const body = JSON.stringify(INITIALIZE);
    const dpop = await proof('POST', htu, tokens.bound);
    return new Promise((resolve, reject) => {
        const req = http.request(cp.url, {
            method: 'POST',
            headers: {
                'content-type': 'application/json',
                accept: 'application/json, text/event-stream',
                'content-length': Buffer.byteLength(body),
                dpop,
                ...headers,
            },
        });
        req.once('response', (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0 });
        });
        req.once('error', reject);
        req.end(body);
    });
}
test('an MCP session belongs to the token that opened it', async () => {
    const { client, transport } = await connect({ bearer: tokens.acme });
    try {
        const sessionId = transport.sessionId;
        assert.ok(sessionId);
        const list = { jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} };
        const onSession = (token) => post({
            authorization: `Bearer ${token}`,
            'mcp-session-id': sessionId,
            'mcp-protocol-version': '2025-06-18',
        }, list);
        const own = await onSession(tokens.acme);
        assert.equal(own.status, 200);
        assert.match(await own.text(), /"whoami"/);
        const records = await recorded(async () => {
            for (const token of [tokens.globex, tokens.bobAcme]) {
                const res = await onSession(token);
                assert.equal(res.status, 404, 'as if there were no such session');
                await res.body?.cancel();
            }
        });
        assert.deepEqual(strip(records).map((r) => [r.tenant, r.actor, r.tool, r.outcome, r.cross_tenant]), [
            ['globex', 'alice-0001', 'mcp-session', 'denied', true],
            ['acme', 'bob-0002', 'mcp-session', 'denied', undefined],
        ]);
        // Without a session id only initialize opens one; a session id never issued is not found.
        const stray = await post({ authorization: `Bearer ${tokens.acme}` }, list);
        assert.equal(stray.status, 400);
        await stray.body?.cancel();
        const unknown = await post({
            authorization: `Bearer ${tokens.acme}`,
            'mcp-session-id': randomUUID(),
            'mcp-protocol-version': '2025-06-18',
        }, list);
        assert.equal(unknown.status, 404);
        await unknown.body?.cancel();
        // The owner's session is untouched.
        assert.equal((await call(client, 'whoami')).isError, false);
    }
    finally {
        await client.close();
    }
});
test('/slow-sse streams 5 events 100 ms apart; /echo-headers answers the headers received', async () => {
    const res = await fetch(new URL('/slow-sse', cp.url), {
        headers: { authorization: `Bearer ${tokens.acme}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.ok(res.body);
    const arrivals = [];
    const events = [];
    let buffer = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
            events.push(buffer.slice(0, end));
            arrivals.push(performance.now());
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
        }
    }
    assert.equal(events.length, 5);
    assert.match(events[0] ?? '', /^id: 1\nevent: tick\ndata: \{"n":1,"ts":\d+\}$/);
    const spread = (arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0);
    assert.ok(spread >= 350, `events arrived over ${spread} ms, not at once`);
    for (let i = 1; i < arrivals.length; i++) {
        assert.ok((arrivals[i] ?? 0) - (arrivals[i - 1] ?? 0) >= 50, 'one by one');
    }
    const echo = await post({ authorization: `Bearer ${tokens.acme}`, 'x-test': 'yes' }, { hello: 1 }, '/echo-headers');
    assert.equal(echo.status, 200);
    const headers = (await echo.json());
    assert.equal(headers['authorization'], `Bearer ${tokens.acme}`);
    assert.equal(headers['x-test'], 'yes');
    assert.equal(headers['host'], new URL(cp.url).host);
    assert.equal((await fetch(new URL('/slow-sse', cp.url))).status, 401, 'behind the token too');
    assert.equal((await post({ authorization: `Bearer ${tokens.acme}` }, {}, '/nope')).status, 404);
    const wrongMethod = await fetch(new URL('/echo-headers', cp.url), {
        headers: { authorization: `Bearer ${tokens.acme}` },
    });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
});
test('records() holds every call so far; onRecord unsubscribes', async () => {
    const all = cp.records();
    assert.ok(all.length >= 20);
    assert.ok(all.some((r) => r.cross_tenant === true && r.outcome === 'denied'));
    assert.ok(all.some((r) => r.tool === 'auth' && r.outcome === 'denied'));
    all[0].tenant = 'tampered';
    assert.notEqual(cp.records()[0]?.tenant, 'tampered', 'a copy');
    const seen = [];
    const off = cp.onRecord((r) => seen.push(r));
    off();
    await post({}).then((r) => r.body?.cancel());
    assert.equal(seen.length, 0);
    assert.equal(cp.records().length, all.length + 1);
    assert.equal(cp.host, '127.0.0.1');
    assert.equal(cp.url, `http://127.0.0.1:${cp.port}/mcp`);
});
