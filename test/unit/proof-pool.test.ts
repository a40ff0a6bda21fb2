/**
 * The DPoP proofs signed ahead of need (src/auth/proof-pool.ts): each used once, only for the request
 * shape and token it was signed for, never older than 2 s, and nothing signed while idle.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProofPool } from '../../src/auth/proof-pool.js';

function setUp(batch = 8) {
  let clock = 1_000_000;
  let serial = 0;
  const asked: number[] = [];
  const pending: Array<() => void> = [];
  let hold = false;
  const pool = new ProofPool({
    now: () => clock,
    batch,
    sign: async (htm, htu, ath, count) => {
      asked.push(count);
      if (hold) await new Promise<void>((resolve) => pending.push(resolve));
      return Array.from({ length: count }, () => `${htm} ${htu} ${ath} #${++serial} @${clock}`);
    },
  });
  return {
    pool,
    asked,
    advance: (ms: number) => {
      clock += ms;
    },
    hold: (on: boolean) => {
      hold = on;
      if (!on) for (const r of pending.splice(0)) r();
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('proof pool: the first request signs its own proof; from the second on, proofs come signed ahead in one batch', async () => {
  const s = setUp();
  const first = await s.pool.take('POST', 'https://mcp/mcp', 'ath1');
  assert.deepEqual(s.asked, [1]);
  const second = await s.pool.take('POST', 'https://mcp/mcp', 'ath1');
  await settle();
  assert.deepEqual(s.asked, [1, 8, 1], 'the second use asks for a batch and signs its own');
  const later: string[] = [];
  for (let i = 0; i < 6; i++) later.push(await s.pool.take('POST', 'https://mcp/mcp', 'ath1'));
  await settle();
  assert.equal(s.pool.counts.fromPool, 6);
  assert.ok(s.asked.length <= 4, `agent asked ${s.asked.length} times for 8 proofs`);
  const all = [first, second, ...later];
  assert.equal(new Set(all).size, all.length, 'every proof is used once');
});

test('proof pool: a proof is only for the method, URL and token it was signed for', async () => {
  const s = setUp();
  for (let i = 0; i < 3; i++) await s.pool.take('POST', 'https://mcp/mcp', 'tokenA');
  await settle();
  const other = await s.pool.take('POST', 'https://mcp/mcp', 'tokenB');
  assert.match(other, /^POST https:\/\/mcp\/mcp tokenB /);
  const get = await s.pool.take('GET', 'https://mcp/mcp', 'tokenA');
  assert.match(get, /^GET /);
  const elsewhere = await s.pool.take('POST', 'https://mcp/other', 'tokenA');
  assert.match(elsewhere, /^POST https:\/\/mcp\/other /);
});

test('proof pool: a proof signed more than 2 s ago is never used', async () => {
  const s = setUp();
  for (let i = 0; i < 3; i++) await s.pool.take('POST', 'https://mcp/mcp', 'ath');
  await settle();
  const signedAt = 1_000_000;
  s.advance(2001);
  const proof = await s.pool.take('POST', 'https://mcp/mcp', 'ath');
  assert.doesNotMatch(proof, new RegExp(`@${signedAt}$`), 'a stale proof was used');
  assert.match(proof, new RegExp(`@${signedAt + 2001}$`));
});

test('proof pool: nothing is signed while the session is idle', async () => {
  const s = setUp();
  for (let i = 0; i < 12; i++) await s.pool.take('POST', 'https://mcp/mcp', 'ath');
  await settle();
  const before = s.asked.length;
  s.advance(60_000);
  await settle();
  assert.equal(s.asked.length, before);
});

test('proof pool: one refill at a time; a request with none ready signs its own instead of waiting', async () => {
  const s = setUp();
  await s.pool.take('POST', 'https://mcp/mcp', 'ath');
  s.hold(true);
  const second = s.pool.take('POST', 'https://mcp/mcp', 'ath');
  const third = s.pool.take('POST', 'https://mcp/mcp', 'ath');
  await settle();
  assert.deepEqual(s.asked, [1, 8, 1, 1], 'one batch in flight, the others signed one each');
  s.hold(false);
  const [a, b] = await Promise.all([second, third]);
  assert.notEqual(a, b);
});
