import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { withLock } from '../../src/auth/lock.js';
import { sleep } from '../../src/io.js';
import { tempDir } from '../helpers/deps.js';

test('the refresh lock serialises holders and is removed after use', async () => {
  const dir = await tempDir();
  const opts = { dir, name: 'refresh-x', sleep, now: () => Date.now() };
  let inside = 0;
  let maxInside = 0;
  const order: number[] = [];
  await Promise.all(
    [1, 2, 3, 4].map((n) =>
      withLock(opts, async () => {
        inside += 1;
        maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 20));
        order.push(n);
        inside -= 1;
      }),
    ),
  );
  assert.equal(maxInside, 1);
  assert.equal(order.length, 4);
  assert.deepEqual(await readdir(dir), []);
});

test('a lock left by a dead process is taken over; a live one times out with a clear error', async () => {
  const dir = await tempDir();
  await writeFile(
    `${dir}/refresh-x.lock`,
    JSON.stringify({ pid: 2 ** 22 + 12345, host: (await import('node:os')).hostname() }),
  );
  const ran = await withLock({ dir, name: 'refresh-x', sleep, now: () => Date.now() }, async () => 'ran');
  assert.equal(ran, 'ran');

  await writeFile(
    `${dir}/refresh-y.lock`,
    JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname() }),
  );
  let now = Date.now();
  await assert.rejects(
    withLock(
      {
        dir,
        name: 'refresh-y',
        waitMs: 1000,
        sleep: async (ms) => {
          now += ms;
        },
        now: () => now,
      },
      async () => 'no',
    ),
    /held the login lock for over 1 s/,
  );
});
