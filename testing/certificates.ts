/*
 * Certificates for TLS tests, made at test time with openssl (Debian's `openssl` package) in a
 * temporary directory: nothing secret is committed, and nothing expires in the repository.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCertificates {
  dir: string;
  /** The CA that signs the node's and the client's certificates. */
  ca: string;
  /** A node certificate signed by `ca` for the given IP addresses (IP SANs), and its key. */
  nodeCert: string;
  nodeKey: string;
  /** A client certificate signed by `ca`, and its key. */
  clientCert: string;
  clientKey: string;
  /** Another CA, which signed nothing here (a wrong cafile). */
  otherCa: string;
  /** A self-signed node certificate (for pinning), its key and its SHA-256 fingerprint. */
  selfSignedCert: string;
  selfSignedKey: string;
  selfSignedFingerprint: string;
  /** Removes the directory. */
  remove(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    ...EC,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-subj',
    `/CN=dispy test ${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

function makeSigned(dir: string, name: string, extensions: string): void {
  openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=dispy test ${name}`]);
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  ]);
}

/** Makes a CA, a node certificate for `nodeIps`, a client certificate, another CA and a self-signed node certificate for `nodeIps`. */
export function makeTestCertificates(nodeIps: string[]): TestCertificates {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dispy-test-tls-'));
  const sans = nodeIps.map((ip) => `IP:${ip}`).join(',');
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  makeSigned(dir, 'node', `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\n`);
  makeSigned(dir, 'client', 'extendedKeyUsage=clientAuth\n');
  openssl(dir, [
    'req',
    '-x509',
    ...EC,
    '-keyout',
    'self.key',
    '-out',
    'self.pem',
    '-days',
    '2',
    '-subj',
    '/CN=dispy test self-signed node',
    '-addext',
    `subjectAltName=${sans}`,
  ]);
  const file = (name: string): string => path.join(dir, name);
  return {
    dir,
    ca: file('ca.pem'),
    nodeCert: file('node.pem'),
    nodeKey: file('node.key'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
    otherCa: file('other-ca.pem'),
    selfSignedCert: file('self.pem'),
    selfSignedKey: file('self.key'),
    selfSignedFingerprint: new X509Certificate(readFileSync(file('self.pem'))).fingerprint256,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
