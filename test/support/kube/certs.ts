// PKI for a throwaway control plane, made with the openssl CLI inside the harness's temp folder:
// a CA, a serving cert for 127.0.0.1/localhost, an admin client cert in group system:masters, and the
// service-account token signing key pair. EC P-256 keys: generated in milliseconds.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface KubePki {
  caCert: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}`);
  }
}

async function ecKey(dir: string, name: string): Promise<string> {
  await openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name]);
  return join(dir, name);
}

/** Key + CSR + certificate signed by the CA, with the given subject and v3 extensions. */
async function issue(dir: string, name: string, subject: string, extensions: string): Promise<[cert: string, key: string]> {
  const key = await ecKey(dir, `${name}.key`);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, ['req', '-new', '-key', key, '-subj', subject, '-out', `${name}.csr`]);
  await openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-set_serial', `0x${randomBytes(16).toString('hex')}`, // no shared serial file: certs are issued in parallel
    '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`,
  ]);
  return [join(dir, `${name}.crt`), key];
}

export async function makePki(dir: string): Promise<KubePki> {
  const caKey = await ecKey(dir, 'ca.key');
  await openssl(dir, [
    'req', '-x509', '-new', '-key', caKey, '-subj', '/CN=connlat-test-ca', '-days', '2', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', 'ca.crt',
  ]);
  const serving = issue(dir, 'apiserver', '/CN=kube-apiserver', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
    '',
  ].join('\n'));
  // O= becomes the Kubernetes group: system:masters is the bootstrap superuser group.
  const admin = issue(dir, 'admin', '/O=system:masters/CN=connlat-test-admin', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=clientAuth',
    '',
  ].join('\n'));
  const serviceAccount = ecKey(dir, 'sa.key').then(async (key) => {
    await openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    return key;
  });
  const [[servingCert, servingKey], [adminCert, adminKey], serviceAccountKey] = await Promise.all([serving, admin, serviceAccount]);
  return {
    caCert: join(dir, 'ca.crt'),
    servingCert,
    servingKey,
    adminCert,
    adminKey,
    serviceAccountKey,
    serviceAccountPub: join(dir, 'sa.pub'),
  };
}
