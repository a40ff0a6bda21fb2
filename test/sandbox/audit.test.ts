import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exportJWK, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { approveDevice } from '../../sandbox/approve.js';
import { type AuditEvent, AuditLog, canonicalJson, chainHash, GENESIS } from '../../sandbox/audit.js';
import {
  type ControlPlane,
  type ControlPlaneOptions,
  startControlPlane,
} from '../../sandbox/control-plane.js';
import { accessTokenHash } from '../../sandbox/dpop-proof.js';
import { type SandboxIdp, startIdp, TOKEN_EXCHANGE_GRANT } from '../../sandbox/idp.js';

const SCOPE = 'openid offline_access profile email';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const HEARTBEAT_MS = 100;

let idp: SandboxIdp;
let config: oidc.Configuration;
const tokens = { acme: '', globex: '', bound: '' };
let dpopKey: { pair: oidc.CryptoKeyPair; jwk: Awaited<ReturnType<typeof exportJWK>> };
const planes: ControlPlane[] = [];
const feeds: Feed[] = [];

before(async () => {
  idp = await startIdp();
  config = await oidc.discovery(new URL(idp.issuer), idp.clientId, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  const alice = await deviceLogin(config, 'alice');
  tokens.acme = await exchange(config, alice, { tenant: 'acme' });
  tokens.globex = await exchange(config, alice, { tenant: 'globex' });
  const pair = await oidc.randomDPoPKeyPair('ES256');
  dpopKey = { pair, jwk: await exportJWK(pair.publicKey) };
  tokens.bound = await exchange(config, alice, { tenant: 'acme', dpop: oidc.getDPoPHandle(config, pair) });
});

after(async () => {
  for (const f of feeds) f.close();
  await Promise.allSettled(planes.map((p) => p.close()));
  await idp?.close();
});

async function deviceLogin(cfg: oidc.Configuration, username: 'alice' | 'bob'): Promise<string> {
  const da = await oidc.initiateDeviceAuthorization(cfg, { scope: SCOPE });
  assert.ok(da.verification_uri_complete);
  await approveDevice(da.verification_uri_complete, { username, password: `${username}-password` });
  return (await oidc.genericGrantRequest(cfg, DEVICE_GRANT, { device_code: da.device_code })).access_token;
}

async function exchange(
  cfg: oidc.Configuration,
  subject: string,
  to: { tenant: string; resource?: string; dpop?: oidc.DPoPHandle },
) {
  const answer = await oidc.genericGrantRequest(
    cfg,
    TOKEN_EXCHANGE_GRANT,
    {
      subject_token: subject,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: to.resource ?? idp.mcpResource,
      tenant: to.tenant,
    },
    to.dpop ? { DPoP: to.dpop } : undefined,
  );
  return answer.access_token;
}

/** A control plane of its own for each test: a clean audit log. */
async function fresh(opts: Partial<ControlPlaneOptions> = {}): Promise<ControlPlane> {
  const cp = await startControlPlane({
    issuer: idp.issuer,
    audience: idp.mcpResource,
    heartbeatMs: HEARTBEAT_MS,
    ...opts,
  });
  planes.push(cp);
  return cp;
}

// ---------------------------------------------------------------------------------------------
// An SSE reader that keeps every frame and the raw byte count, and says how the stream ended.

interface Frame {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

interface Feed {
  status: number;
  headers: Headers;
  frames: Frame[];
  bytes: number;
  /** How the body ended: 'eof' (a clean end), 'error' (cut), 'closed' (by us). */
  ended: Promise<'eof' | 'error' | 'closed'>;
  isOver(): boolean;
  /** Resolves when pred holds over the frames so far; rejects after ms. */
  waitFor(pred: (frames: Frame[]) => boolean, ms?: number): Promise<void>;
  close(): void;
}

async function openFeed(
  cp: ControlPlane,
  opts: { token?: string; lastEventId?: string; query?: string; headers?: Record<string, string> } = {},
): Promise<Feed> {
  const abort = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream', ...opts.headers };
  if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
  if (opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
  const res = await fetch(cp.auditUrl + (opts.query ?? ''), { headers, signal: abort.signal });
  const waiters = new Set<() => void>();
  let over = false;
  const feed: Feed = {
    status: res.status,
    headers: res.headers,
    frames: [],
    bytes: 0,
    ended: Promise.resolve('eof'),
    isOver: () => over,
    // Generous: it bounds a wait for something that must come, which a loaded machine may delay.
    waitFor(pred, ms = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred(feed.frames)) {
            done();
            resolve();
          } else if (over) {
            done();
            reject(new Error(`the stream ended first; frames: ${JSON.stringify(feed.frames)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out; frames: ${JSON.stringify(feed.frames)}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close: () => abort.abort(),
  };
  feeds.push(feed);
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  feed.ended = (async () => {
    if (!res.body) return 'eof';
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        feed.bytes += chunk.length;
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          feed.frames.push(parseFrame(buffer.slice(0, end)));
          buffer = buffer.slice(end + 2);
        }
        notify();
      }
      return 'eof';
    } catch {
      return abort.signal.aborted ? 'closed' : 'error';
    } finally {
      over = true;
      notify();
    }
  })();
  return feed;
}

function parseFrame(text: string): Frame {
  const frame: Frame = {};
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) frame.comment = line.slice(1).trim();
    const m = /^(id|event|data): (.*)$/.exec(line);
    if (m?.[1] === 'id' || m?.[1] === 'event' || m?.[1] === 'data') frame[m[1]] = m[2];
  }
  return frame;
}

const auditFrames = (frames: Frame[]) => frames.filter((f) => f.event === 'audit');
const eventsOf = (frames: Frame[]): AuditEvent[] =>
  auditFrames(frames).map((f) => JSON.parse(f.data ?? '') as AuditEvent);
const seqsOf = (frames: Frame[]) => auditFrames(frames).map((f) => Number(f.id));
const count = (n: number) => (frames: Frame[]) => auditFrames(frames).length >= n;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Recomputes the chain rule without sandbox/audit.ts: flat events, keys sorted, sha256 over prev + JSON. */
function independentHash(event: AuditEvent): string {
  const rest: Record<string, unknown> = { ...event };
  delete rest['prev'];
  delete rest['hash'];
  const body = Object.keys(rest)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(rest[k])}`)
    .join(',');
  return createHash('sha256').update(`${event.prev}{${body}}`).digest('hex');
}

function assertChain(events: AuditEvent[], tenant: string): void {
  let prev = GENESIS;
  events.forEach((e, i) => {
    assert.equal(e.seq, i + 1, 'seq 1, 2, 3…');
    assert.equal(e.tenant, tenant);
    assert.equal(e.prev, prev, `event ${e.seq} names its predecessor`);
    assert.equal(e.hash, independentHash(e), `event ${e.seq} hash`);
    prev = e.hash;
  });
}

/** Seeds n synthetic events into a tenant's chain. */
function seed(cp: ControlPlane, tenant: string, n: number): AuditEvent[] {
  return range(1, n).map((i) => cp.appendAudit(tenant, { tool: `tool-${i}` }));
}

/** Reconnects with Last-Event-ID after every cut until `total` events; the seqs each connection gave. */
async function collect(cp: ControlPlane, total: number, maxConnections = 40): Promise<number[][]> {
  const perConnection: number[][] = [];
  let last = 0;
  for (let i = 0; i < maxConnections && last < total; i++) {
    const feed = await openFeed(cp, { token: tokens.acme, lastEventId: String(last) });
    assert.equal(feed.status, 200);
    await Promise.race([feed.ended, feed.waitFor(count(total - last)).catch(() => {})]);
    feed.close();
    const seqs = seqsOf(feed.frames);
    perConnection.push(seqs);
    last = seqs.at(-1) ?? last;
  }
  return perConnection;
}

// ---------------------------------------------------------------------------------------------

test('canonicalJson: keys sorted at every level, no whitespace, absent fields omitted', () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' }, u: undefined }),
    '{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}',
  );
  assert.equal(canonicalJson({ é: 1, Z: 2, a: 3, _: 4 }), '{"Z":2,"_":4,"a":3,"é":1}');
  assert.equal(canonicalJson('line\nbreak "q"'), '"line\\nbreak \\"q\\""');
  assert.throws(() => canonicalJson({ n: Number.NaN }), TypeError);
  assert.throws(() => canonicalJson({ f: () => 1 }), TypeError);
});

test('the chain rule: per-tenant seq, prev links, hash = sha256(prev + canonical JSON of the rest)', () => {
  const log = new AuditLog();
  const first = log.append({
    ts: '2025-01-02T03:04:05.678Z',
    tenant: 'acme',
    actor: 'alice',
    tool: 'run_workflow',
    downstream: 'workflow-engine',
    outcome: 'denied',
    reason: 'workflow wf-globex-etl belongs to another tenant',
    cross_tenant: true,
  });
  assert.equal(GENESIS, '0'.repeat(64));
  assert.equal(first.prev, GENESIS);
  // Known answer, computed outside Node: printf '%s%s' <64 zeros> '<canonical JSON>' | sha256sum
  assert.equal(first.hash, '49a40ff934fce571d59c1eacbfd8166f7af0e2f5716fb7bb53b5eceb080fcea9');
  const { prev, hash, ...rest } = first;
  assert.equal(chainHash(prev, rest), hash);

  for (let i = 0; i < 4; i++) {
    const base = {
      ts: new Date().toISOString(),
      actor: 'alice',
      tool: 'whoami',
      downstream: 'control-plane',
    };
    log.append({ ...base, tenant: 'acme', outcome: 'allowed', reason: undefined });
    log.append({ ...base, tenant: 'globex', outcome: i % 2 ? 'error' : 'allowed' });
  }
  const acme = log.since('acme', 0);
  const globex = log.since('globex', 0);
  assert.equal(acme.length, 5);
  assert.equal(globex.length, 4);
  assertChain(acme, 'acme');
  assertChain(globex, 'globex');
  assert.equal(globex[0]?.prev, GENESIS, 'each tenant has its own genesis');
  assert.ok(!('reason' in (acme[1] ?? {})), 'an undefined optional field is absent, not null');
});

test('AuditLog: since, sinceTime, get, size, tenants, subscribe; events frozen; bad records refused', () => {
  const log = new AuditLog();
  const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s)).toISOString();
  const entry = { actor: 'a', tool: 't', downstream: 'd', outcome: 'allowed' as const };
  const heard: number[] = [];
  const off = log.subscribe('acme', (e) => heard.push(e.seq));
  const otherTenant: number[] = [];
  log.subscribe('globex', (e) => otherTenant.push(e.seq));
  log.subscribe('acme', () => {
    throw new Error('a failing subscriber');
  });
  for (let s = 0; s < 5; s++) log.append({ ...entry, tenant: 'acme', ts: at(s * 10) });
  assert.deepEqual(heard, [1, 2, 3, 4, 5]);
  assert.deepEqual(otherTenant, []);
  off();
  log.append({ ...entry, tenant: 'acme', ts: at(60) });
  assert.deepEqual(heard, [1, 2, 3, 4, 5], 'unsubscribed');

  assert.deepEqual(
    log.since('acme', 3).map((e) => e.seq),
    [4, 5, 6],
  );
  assert.deepEqual(log.since('acme', 6), []);
  assert.deepEqual(log.since('nobody', 0), []);
  assert.deepEqual(
    log.sinceTime('acme', at(20)).map((e) => e.seq),
    [3, 4, 5, 6],
  );
  assert.deepEqual(
    log.sinceTime('acme', '2030-01-01T01:00:20+01:00').map((e) => e.seq),
    [3, 4, 5, 6],
  );
  assert.throws(() => log.sinceTime('acme', 'yesterday'), RangeError);
  assert.equal(log.get('acme', 2)?.ts, at(10));
  assert.equal(log.get('acme', 0), undefined);
  assert.equal(log.size('acme'), 6);
  assert.deepEqual(log.tenants(), ['acme']);

  const e = log.get('acme', 1);
  assert.ok(e && Object.isFrozen(e));
  assert.throws(() => {
    (e as { outcome: string }).outcome = 'denied';
  }, TypeError);

  const bad = [
    { ...entry, tenant: 'acme', ts: 'not a time' },
    { ...entry, tenant: '', ts: at(0) },
    { ...entry, tenant: 'acme', ts: at(0), outcome: 'maybe' },
    { ...entry, tenant: 'acme', ts: at(0), cross_tenant: 'yes' },
  ];
  for (const r of bad) assert.throws(() => log.append(r as Parameters<AuditLog['append']>[0]), TypeError);
  assert.equal(log.size('acme'), 6, 'nothing appended');
});

test('tool calls and tenant-known denials are chained per tenant; unauthenticated refusals are not', async () => {
  const cp = await fresh();
  const connect = async (token: string) => {
    const transport = new StreamableHTTPClientTransport(new URL(cp.url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: 'audit-test', version: '0.0.0' });
    await client.connect(transport);
    return client;
  };
  const acme = await connect(tokens.acme);
  const globex = await connect(tokens.globex);
  try {
    await acme.callTool({ name: 'whoami', arguments: {} });
    await acme.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } });
    await globex.callTool({ name: 'list_workflows', arguments: {} });
    const none = await fetch(cp.url, { method: 'POST', body: '{}' });
    assert.equal(none.status, 401);
    await none.body?.cancel();
  } finally {
    await acme.close();
    await globex.close();
  }
  assert.equal(cp.records().length, 4);
  assert.deepEqual(cp.audit.tenants().sort(), ['acme', 'globex']);
  assert.deepEqual(cp.audit.since('-', 0), [], 'no chain for an unknown tenant');
  const chain = cp.audit.since('acme', 0);
  assertChain(chain, 'acme');
  assert.deepEqual(
    chain.map((e) => [e.seq, e.tool, e.outcome, e.cross_tenant]),
    [
      [1, 'whoami', 'allowed', undefined],
      [2, 'run_workflow', 'denied', true],
    ],
  );
  assert.equal(chain[1]?.actor, 'alice-0001');
  assert.equal(chain[1]?.reason, 'workflow wf-globex-etl belongs to another tenant');
  assertChain(cp.audit.since('globex', 0), 'globex');
  assert.equal(cp.audit.size('globex'), 1);
});

test('GET /audit/stream: SSE headers, one frame per event, backlog then live, own tenant only', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 3);
  seed(cp, 'globex', 2);
  const acme = await openFeed(cp, { token: tokens.acme });
  const globex = await openFeed(cp, { token: tokens.globex });
  assert.equal(acme.status, 200);
  assert.equal(acme.headers.get('content-type'), 'text/event-stream');
  assert.equal(acme.headers.get('cache-control'), 'no-store');
  await acme.waitFor(count(3));

  cp.appendAudit('acme', { outcome: 'denied', reason: 'live one', cross_tenant: true });
  cp.appendAudit('globex', { tool: 'globex-only' });
  await acme.waitFor(count(4));
  await globex.waitFor(count(3));

  const first = auditFrames(acme.frames)[0];
  assert.equal(first?.id, '1');
  assert.deepEqual(JSON.parse(first?.data ?? ''), cp.audit.get('acme', 1));
  assert.ok(!first?.data?.includes('\n'));
  const events = eventsOf(acme.frames);
  assertChain(events, 'acme');
  assert.deepEqual(events, cp.audit.since('acme', 0));
  assert.equal(events[3]?.reason, 'live one');
  assertChain(eventsOf(globex.frames), 'globex');
  assert.ok(eventsOf(globex.frames).every((e) => e.tenant === 'globex'));
  assert.ok(
    [...acme.frames, ...globex.frames].every((f) => f.comment !== undefined || f.event === 'audit'),
    'only audit events and comments',
  );
  // No query parameter reaches another tenant's chain: the token names the tenant.
  const sneaky = await openFeed(cp, { token: tokens.acme, query: '?tenant=globex' });
  await sneaky.waitFor(count(4));
  assert.ok(eventsOf(sneaky.frames).every((e) => e.tenant === 'acme'));
  for (const f of [acme, globex, sneaky]) f.close();
});

test('the stream needs the tenant token: 401 with a challenge; DPoP-bound needs a proof for its URL', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 1);
  const none = await openFeed(cp);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
  const forged = await openFeed(cp, { token: `${tokens.acme.slice(0, -4)}AAAA` });
  assert.equal(forged.status, 401);
  assert.ok(cp.records().every((r) => r.tenant === '-' && r.tool === 'auth'));
  assert.equal(cp.audit.size('acme'), 1, 'refusals stay out of the chain');

  const proof = (htu: string) =>
    new SignJWT({ htm: 'GET', htu, ath: accessTokenHash(tokens.bound), jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopKey.jwk })
      .setIssuedAt()
      .sign(dpopKey.pair.privateKey);
  const bound = (htu: string, query = '') =>
    proof(htu).then((dpop) =>
      openFeed(cp, { query, headers: { authorization: `DPoP ${tokens.bound}`, dpop } }),
    );
  const ok = await bound(cp.auditUrl, '?after=0');
  assert.equal(ok.status, 200);
  await ok.waitFor(count(1));
  ok.close();
  assert.equal((await bound(cp.url)).status, 401, 'a proof for /mcp is not one for /audit/stream');
  const noProof = await openFeed(cp, { headers: { authorization: `DPoP ${tokens.bound}` } });
  assert.equal(noProof.status, 401);

  const post = await fetch(cp.auditUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.acme}` },
  });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET');
});

test('resume: Last-Event-ID (or ?after=) continues strictly after that seq, no gap, no repeat', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 10);
  const first = await openFeed(cp, { token: tokens.acme });
  await first.waitFor(count(4));
  first.close();
  const got = seqsOf(first.frames).slice(0, 4);

  const resumed = await openFeed(cp, { token: tokens.acme, lastEventId: '4' });
  await resumed.waitFor(count(6));
  cp.appendAudit('acme');
  cp.appendAudit('acme');
  await resumed.waitFor(count(8));
  const all = [...got, ...seqsOf(resumed.frames)];
  assert.deepEqual(all, range(1, 12));
  assertChain([...eventsOf(first.frames).slice(0, 4), ...eventsOf(resumed.frames)], 'acme');
  resumed.close();

  const byQuery = await openFeed(cp, { token: tokens.acme, query: '?after=9' });
  await byQuery.waitFor(count(3));
  assert.deepEqual(seqsOf(byQuery.frames), [10, 11, 12]);
  byQuery.close();
  // An EventSource reconnects with its original URL and the id it last saw: the header wins.
  const both = await openFeed(cp, { token: tokens.acme, query: '?after=2', lastEventId: '11' });
  await both.waitFor(count(1));
  assert.deepEqual(seqsOf(both.frames), [12]);
  both.close();
  // Past the end: only what comes after it.
  const ahead = await openFeed(cp, { token: tokens.acme, lastEventId: '13' });
  cp.appendAudit('acme'); // 13
  cp.appendAudit('acme'); // 14
  await ahead.waitFor(count(1));
  assert.deepEqual(seqsOf(ahead.frames), [14]);
  ahead.close();
});

for (const bad of [{ lastEventId: 'abc' }, { lastEventId: '-1' }, { query: '?after=1.5' }]) {
  test(`a malformed resume point is a 400: ${JSON.stringify(bad)}`, async () => {
    const cp = await fresh();
    const res = await openFeed(cp, { token: tokens.acme, ...bad });
    assert.equal(res.status, 400, JSON.stringify(bad));
  });
}

test('?since=<ISO time> sends the backlog from that time, then live events', async () => {
  const cp = await fresh();
  const at = (m: number) => new Date(Date.UTC(2031, 5, 1, 12, m)).toISOString();
  for (const m of [0, 10, 20, 30]) cp.appendAudit('acme', { ts: at(m) });
  const feed = await openFeed(cp, { token: tokens.acme, query: `?since=${encodeURIComponent(at(20))}` });
  await feed.waitFor(count(2));
  cp.appendAudit('acme', { ts: at(40) });
  await feed.waitFor(count(3));
  assert.deepEqual(seqsOf(feed.frames), [3, 4, 5]);
  feed.close();

  const offset = await openFeed(cp, { token: tokens.acme, query: '?since=2031-06-01T14:05:00%2B02:00' });
  await offset.waitFor(count(4));
  assert.deepEqual(seqsOf(offset.frames), [2, 3, 4, 5]);
  offset.close();
});

for (const bad of ['yesterday', '2031-06-01T12:00:00', '2031-13-01T00:00:00Z']) {
  test(`?since=${bad} (not an ISO time with a zone) is a 400`, async () => {
    const cp = await fresh();
    const res = await openFeed(cp, { token: tokens.acme, query: `?since=${encodeURIComponent(bad)}` });
    assert.equal(res.status, 400, bad);
  });
}

test('a `: ping` comment every heartbeatMs, events or not', async () => {
  const cp = await fresh();
  // Taken before the request: the server's interval starts later still, so however loaded the machine,
  // two pings cannot have come in less than two intervals of this clock (timers never fire early).
  const t0 = performance.now();
  const feed = await openFeed(cp, { token: tokens.globex });
  await feed.waitFor((frames) => frames.filter((f) => f.comment === 'ping').length >= 2);
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= HEARTBEAT_MS * 2 - 2, `two pings after ${elapsed} ms`);
  assert.equal(auditFrames(feed.frames).length, 0);
  assert.equal(cp.openStreams(), 1);
  feed.close();
  await feed.ended;
  await waitUntil(() => cp.openStreams() === 0);
});

async function waitUntil(pred: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('fault cut-after: every connection is cut after n events; resuming gets them all', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 10);
  cp.setStreamFault({ kind: 'cut-after', events: 3 });
  const feed = await openFeed(cp, { token: tokens.acme });
  assert.equal(await feed.ended, 'error', 'cut abruptly, not ended cleanly');
  assert.deepEqual(seqsOf(feed.frames), [1, 2, 3]);
  const parts = await collect(cp, 10);
  assert.deepEqual(parts, [
    [1, 2, 3],
    [4, 5, 6],
    [7, 8, 9],
    [10], // fewer than 3 left: this connection stays open until the client leaves
  ]);
});

test('fault cut-random: 1–7 events per connection, the same cuts for the same seed', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 40);
  cp.setStreamFault({ kind: 'cut-random', seed: 42 });
  const a = await collect(cp, 40);
  cp.setStreamFault({ kind: 'cut-random', seed: 42 });
  const b = await collect(cp, 40);
  assert.deepEqual(a, b);
  assert.deepEqual(a.flat(), range(1, 40), 'no gap, no repeat');
  assert.ok(a.length >= 6);
  assert.ok(a.slice(0, -1).every((p) => p.length >= 1 && p.length <= 7));
  assert.ok(new Set(a.slice(0, -1).map((p) => p.length)).size > 1, 'not always the same count');
  cp.setStreamFault({ kind: 'cut-random', seed: 7 });
  assert.notDeepEqual(await collect(cp, 40), a);
});

test('fault tamper: event seq once with a changed field and the original hash', async () => {
  const cp = await fresh();
  const real = seed(cp, 'acme', 5);
  cp.setStreamFault({ kind: 'tamper', seq: 3 });
  const feed = await openFeed(cp, { token: tokens.acme });
  await feed.waitFor(count(5));
  feed.close();
  const sent = eventsOf(feed.frames);
  assert.deepEqual(
    sent.map((e) => e.seq),
    [1, 2, 3, 4, 5],
  );
  const bad = sent[2];
  assert.ok(bad);
  assert.equal(bad.hash, real[2]?.hash, 'the original hash');
  assert.equal(bad.outcome, 'denied', 'a changed field');
  assert.notEqual(independentHash(bad), bad.hash, 'which no longer matches');
  const again = await openFeed(cp, { token: tokens.acme, lastEventId: '2' });
  await again.waitFor(count(3));
  again.close();
  assertChain([...sent.slice(0, 2), ...eventsOf(again.frames)], 'acme');
});

test('fault drop: event seq is left out once', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 5);
  cp.setStreamFault({ kind: 'drop', seq: 3 });
  const feed = await openFeed(cp, { token: tokens.acme });
  await feed.waitFor(count(4));
  feed.close();
  assert.deepEqual(seqsOf(feed.frames), [1, 2, 4, 5]);
  const again = await openFeed(cp, { token: tokens.acme, lastEventId: '2' });
  await again.waitFor(count(3));
  again.close();
  assert.deepEqual(seqsOf(again.frames), [3, 4, 5]);
});

test('fault swap: seq+1 before seq once, also when seq+1 is appended live', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 5);
  cp.setStreamFault({ kind: 'swap', seq: 3 });
  const feed = await openFeed(cp, { token: tokens.acme });
  await feed.waitFor(count(5));
  feed.close();
  assert.deepEqual(seqsOf(feed.frames), [1, 2, 4, 3, 5]);
  const again = await openFeed(cp, { token: tokens.acme });
  await again.waitFor(count(5));
  again.close();
  assert.deepEqual(seqsOf(again.frames), [1, 2, 3, 4, 5]);

  cp.setStreamFault({ kind: 'swap', seq: 5 });
  const live = await openFeed(cp, { token: tokens.acme, lastEventId: '3' });
  await live.waitFor(count(1));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(seqsOf(live.frames), [4], 'seq 5 is held back until seq 6 exists');
  cp.appendAudit('acme');
  await live.waitFor(count(3));
  live.close();
  assert.deepEqual(seqsOf(live.frames), [4, 6, 5]);
});

test('fault malformed: `data: {not json` under id seq once', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 4);
  cp.setStreamFault({ kind: 'malformed', seq: 2 });
  const feed = await openFeed(cp, { token: tokens.acme });
  await feed.waitFor(count(4));
  feed.close();
  const frames = auditFrames(feed.frames);
  assert.deepEqual(frames[1], { id: '2', event: 'audit', data: '{not json' });
  assert.deepEqual(seqsOf(feed.frames), [1, 2, 3, 4]);
  const again = await openFeed(cp, { token: tokens.acme, lastEventId: '1' });
  await again.waitFor(count(3));
  again.close();
  const wellFormed = auditFrames(feed.frames).filter((f) => f.data !== '{not json');
  assertChain([...eventsOf(wellFormed).slice(0, 1), ...eventsOf(again.frames)], 'acme');
});

test('fault silent: headers, then not a byte, not even a heartbeat', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 3);
  cp.setStreamFault({ kind: 'silent', connections: 1 });
  const feed = await openFeed(cp, { token: tokens.acme });
  assert.equal(feed.status, 200);
  assert.equal(feed.headers.get('content-type'), 'text/event-stream');
  cp.appendAudit('acme');
  await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 4));
  assert.equal(feed.bytes, 0);
  assert.equal(feed.isOver(), false, 'still open');
  feed.close();
  const next = await openFeed(cp, { token: tokens.acme });
  await next.waitFor(count(4));
  next.close();
});

test('fault status: 401 or 403 instead of the stream; invalid faults are refused', async () => {
  const cp = await fresh();
  seed(cp, 'acme', 1);
  cp.setStreamFault({ kind: 'status', code: 401 });
  for (let i = 0; i < 2; i++) {
    const res = await openFeed(cp, { token: tokens.acme });
    assert.equal(res.status, 401, 'until cleared');
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
  }
  cp.setStreamFault({ kind: 'status', code: 403 });
  const forbidden = await openFeed(cp, { token: tokens.acme });
  assert.equal(forbidden.status, 403);
  assert.match(forbidden.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
  cp.setStreamFault(undefined);
  const ok = await openFeed(cp, { token: tokens.acme });
  assert.equal(ok.status, 200);
  await ok.waitFor(count(1));
  ok.close();

  const invalid = [
    { kind: 'cut-after', events: 0 },
    { kind: 'tamper', seq: 0 },
    { kind: 'status', code: 500 },
    { kind: 'explode' },
  ];
  for (const f of invalid) {
    assert.throws(() => cp.setStreamFault(f as Parameters<ControlPlane['setStreamFault']>[0]), TypeError);
  }
});

test('the stream ends when the token expires; the client comes back with a fresh one', async () => {
  // 5 s: exp is whole seconds, so a 2 s token could be good for barely 1 s, less than a loaded machine may
  // take from the exchange to the feed's check of it (a JWKS fetch on the way).
  const shortIdp = await startIdp({ tenantTokenTtl: 5 });
  try {
    const cfg = await oidc.discovery(new URL(shortIdp.issuer), shortIdp.clientId, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    const cp = await fresh({ issuer: shortIdp.issuer, audience: shortIdp.mcpResource });
    const token = await exchange(cfg, await deviceLogin(cfg, 'bob'), {
      tenant: 'acme',
      resource: shortIdp.mcpResource,
    });
    seed(cp, 'acme', 1);
    const feed = await openFeed(cp, { token });
    assert.equal(feed.status, 200);
    assert.equal(await feed.ended, 'eof', 'a clean end, not a cut');
    assert.deepEqual(seqsOf(feed.frames), [1]);
  } finally {
    await shortIdp.close();
  }
});
