import { CliError } from '../errors.js';
import { DEVICE_CODE_GRANT } from './login-ui.js';
import { mapIdpError, oauthError } from './oidc.js';
/** RFC 8628 §3.2: clients default to 5 s when the IdP does not say. */
const DEFAULT_INTERVAL_S = 5;
/** RFC 8628 §3.5: on slow_down the interval grows by 5 s for this and every later request. */
const SLOW_DOWN_STEP_S = 5;
export async function deviceLogin(options) {
    const { idp, ui, signal } = options;
    const { client, config, issuer } = idp;
    let auth;
    try {
        auth = await client.initiateDeviceAuthorization(config, { scope: options.scope, ...options.extraParams });
    }
    catch (err) {
        throw mapIdpError(err, issuer, 'device authorization');
    }
    await ui.showDeviceCode({
        verificationUri: auth.verification_uri,
        verificationUriComplete: auth.verification_uri_complete,
        userCode: auth.user_code,
        expiresInSeconds: auth.expires_in,
    });
    let interval = Math.max(1, Math.min(auth.interval ?? DEFAULT_INTERVAL_S, 60));
    const deadline = options.now() + auth.expires_in * 1000;
    const waiting = ui.waiting(`Waiting for the sign-in to be approved (code ${auth.user_code})…`);
    try {
        // Bounded by the code's lifetime, and by count in case the clock does not move.
        const maxPolls = Math.ceil(auth.expires_in) + 10;
        for (let poll = 0; poll < maxPolls; poll++) {
            await options.sleep(interval * 1000, signal);
            if (options.now() >= deadline)
                break;
            try {
                return await client.genericGrantRequest(config, DEVICE_CODE_GRANT, { device_code: auth.device_code }, options.dpop);
            }
            catch (err) {
                const oauth = oauthError(err);
                switch (oauth?.error) {
                    case 'authorization_pending':
                        continue;
                    case 'slow_down':
                        interval += SLOW_DOWN_STEP_S;
                        ui.debug(`IdP asked to slow down; polling every ${interval} s`);
                        continue;
                    case 'expired_token':
                        throw new CliError('auth', 'the sign-in code expired before it was approved', {
                            hint: 'run `mcp-secure login` again and approve within the time shown',
                        });
                    case 'access_denied':
                        throw new CliError('auth', 'the sign-in was denied in the browser', {
                            hint: 'run `mcp-secure login` again and choose Allow, or ask your IdP admin for access',
                        });
                    default:
                        throw mapIdpError(err, issuer, 'device login', 'auth');
                }
            }
        }
        throw new CliError('auth', 'the sign-in code expired before it was approved', {
            hint: 'run `mcp-secure login` again and approve within the time shown',
        });
    }
    finally {
        waiting.stop();
    }
}
