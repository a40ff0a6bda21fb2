/**
 * The one rule for every URL a credential goes to (issue 13, item 7), applied by the fetch every IdP and
 * exchange request goes through: whatever URL discovery names (token, device, revocation, JWKS), the
 * request is refused before it is made unless it is https, or plain http to loopback with the opt-in.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guardedFetch, readCapped } from '../../src/auth/oidc.js';
import { CliError } from '../../src/errors.js';

const cases: Array<[string, boolean, 'sent' | number]> = [
  ['https://idp.example/oauth/revoke', false, 'sent'],
  ['https://idp.example/jwks', true, 'sent'],
  ['http://127.0.0.1:8080/token', true, 'sent'],
  ['http://127.0.0.2:8080/revoke', true, 'sent'],
  ['http://[::1]:8080/device', true, 'sent'],
  ['http://localhost:8080/jwks', true, 'sent'],
  ['http://127.0.0.1:8080/token', false, 2],
  ['http://idp.invalid/revoke', true, 5],
  ['http://idp.invalid/jwks', false, 5],
  ['http://10.0.0.1/token', true, 5],
  ['http://127.0.0.1.nip.io/token', true, 5],
  ['ftp://idp.example/token', true, 2],
];

for (const [url, insecureHttp, expected] of cases) {
  test(`${url} with${insecureHttp ? '' : 'out'} --insecure-http: ${expected === 'sent' ? 'sent' : `refused (exit ${expected})`}`, async () => {
    let sent = 0;
    const fetch = guardedFetch(
      async () => {
        sent++;
        return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
      },
      { insecureHttp, debug: undefined },
    );
    if (expected === 'sent') {
      const res = await fetch(url, { method: 'POST', headers: {}, redirect: 'manual' } as never);
      assert.equal(res.status, 200);
      assert.equal(sent, 1);
    } else {
      await assert.rejects(
        fetch(url, { method: 'POST', headers: {}, redirect: 'manual' } as never),
        (err: unknown) => err instanceof CliError && err.exitCode === expected,
      );
      assert.equal(sent, 0, 'nothing was sent');
    }
  });
}

test('readCapped: an answer at the cap passes; one byte over is refused in one line', async () => {
  const cap = 1024;
  const ok = await readCapped(new Response(Buffer.alloc(cap, 0x41)), 'https://idp.example/x', cap);
  assert.equal((await ok.arrayBuffer()).byteLength, cap);
  await assert.rejects(
    readCapped(new Response(Buffer.alloc(cap + 1, 0x41)), 'https://idp.example/x', cap),
    (err: unknown) =>
      err instanceof CliError &&
      err.exitCode === 1 &&
      /sent an answer over 1 KiB; refusing it/.test(err.message),
  );
});
