/**
 * A private CA and a server certificate for 127.0.0.1 signed by it, made now with openssl (as a company
 * CA would sign its IdP's certificate): nothing on this machine trusts the CA unless told to.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './deps.js';
const exec = promisify(execFile);
export async function privateCa() {
    const dir = await tempDir('mcp-secure-ca-');
    const f = (name) => join(dir, name);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    await exec('openssl', [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        f('ca.key'),
        '-out',
        f('ca.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=mcp-secure test private CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await exec('openssl', [
        'req',
        ...ec,
        '-keyout',
        f('leaf.key'),
        '-out',
        f('leaf.csr'),
        '-subj',
        '/CN=127.0.0.1',
    ]);
    await writeFile(f('leaf.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
    await exec('openssl', [
        'x509',
        '-req',
        '-in',
        f('leaf.csr'),
        '-CA',
        f('ca.pem'),
        '-CAkey',
        f('ca.key'),
        '-CAcreateserial',
        '-out',
        f('leaf.pem'),
        '-days',
        '2',
        '-extfile',
        f('leaf.ext'),
    ]);
    return {
        caFile: f('ca.pem'),
        cert: await readFile(f('leaf.pem'), 'utf8'),
        key: await readFile(f('leaf.key'), 'utf8'),
    };
}
