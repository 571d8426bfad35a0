import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { helpText, parseFlags, saveConfig } from '../src/flags.js';

describe('dispyscheduler flags', () => {
  it("reads dispy's flags, both spellings, and the secrets from the environment", () => {
    const settings = parseFlags(
      [
        '-n',
        '127.0.0.11',
        '--nodes',
        '127.0.0.*',
        '-i',
        '127.0.0.1',
        '--dispy_port',
        '9700',
        '--scheduler-port',
        '9702',
        '--node-port',
        '9701',
      ],
      { DISPY_NODE_SECRET: 'node secret', DISPY_CLUSTER_SECRET: 'cluster secret' },
    );
    expect(settings.options).toMatchObject({
      nodes: ['127.0.0.11', '127.0.0.*'],
      hosts: ['127.0.0.1'],
      port: 9700,
      schedulerPort: 9702,
      nodePort: 9701,
      nodeSecret: 'node secret',
      clusterSecret: 'cluster secret',
    });
    expect(settings.warnings).toEqual([]);
  });

  it('warns of a secret on the command line, which wins over the environment', () => {
    const settings = parseFlags(['--cluster-secret', 'flag'], { DISPY_CLUSTER_SECRET: 'env' });
    expect(settings.options.clusterSecret).toBe('flag');
    expect(settings.warnings.join('\n')).toContain('DISPY_CLUSTER_SECRET');
  });

  it('takes --max-file-size as dispynode does: bytes with an optional k, m, g or t', () => {
    expect(parseFlags(['--max-file-size', '10m'], {}).options.maxFileSize).toBe(10 * 1024 * 1024);
    expect(parseFlags(['--max-file-size', '4096'], {}).options.maxFileSize).toBe(4096);
    expect(parseFlags(['--max_file_size', '0'], {}).options.maxFileSize).toBe(0);
    expect(() => parseFlags(['--max-file-size', 'ten'], {})).toThrow(
      /size must be a number of bytes with an optional k, m, g or t suffix, got "ten"/,
    );
  });

  it('reads the TLS flags of both sides, in both spellings', () => {
    const fingerprint = 'AB'.repeat(32);
    const settings = parseFlags(
      [
        '--node-keyfile',
        'n.key',
        '--node_certfile',
        'n.pem',
        '--node-cafile',
        'ca.pem',
        '--node-cert-fingerprint',
        fingerprint,
        '--node-cert-fingerprint',
        fingerprint.toLowerCase(),
        '--cluster-keyfile',
        'c.key',
        '--cluster_certfile',
        'c.pem',
        '--cluster-cafile',
        'clients-ca.pem',
        '--require_client_cert',
      ],
      {},
    );
    expect(settings.options).toEqual({
      nodeKeyfile: 'n.key',
      nodeCertfile: 'n.pem',
      nodeCafile: 'ca.pem',
      nodeCertFingerprint: [fingerprint, fingerprint.toLowerCase()],
      clusterKeyfile: 'c.key',
      clusterCertfile: 'c.pem',
      clusterCafile: 'clients-ca.pem',
      requireClientCert: true,
    });
  });

  it('saves the TLS files as absolute paths, and reads them back with --config', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispyscheduler-flags-'));
    try {
      const file = path.join(dir, 'config.json');
      saveConfig(file, { clusterCertfile: 'c.pem', nodeCafile: '/etc/ca.pem', requireClientCert: true, clusterSecret: 'not saved' });
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      expect(saved).toEqual({ clusterCertfile: path.resolve('c.pem'), nodeCafile: '/etc/ca.pem', requireClientCert: true });
      expect(parseFlags(['--config', file, '--node-cafile', 'other.pem'], {}).options).toEqual({ ...saved, nodeCafile: 'other.pem' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes --httpd with its port, address and token (from the environment too), and a wrong number naming the flag', () => {
    expect(parseFlags(['--httpd', '--httpd-port', '8282', '--httpd-host', '127.0.0.2'], {}).options).toMatchObject({
      httpd: true,
      httpdPort: 8282,
      httpdHost: '127.0.0.2',
    });
    expect(parseFlags(['--httpd'], { DISPY_HTTPD_TOKEN: 'from-the-environment' }).options).toMatchObject({
      httpdToken: 'from-the-environment',
    });
    expect(() => parseFlags(['--httpd-port', 'x'], {})).toThrow(/--httpd-port must be an integer/);
    expect(() => parseFlags(['--scheduler-port', 'x'], {})).toThrow(/--scheduler-port must be an integer/);
    expect(() => parseFlags(['--msg-timeout', '-1'], {})).toThrow();
  });

  it("says what to do instead of Python dispy's dispyscheduler flags that this one does not have, and names the flag meant", () => {
    expect(() => parseFlags(['--node', '127.0.0.1'], {})).toThrow("--node is a flag of Python dispy's dispyscheduler: spelled -n/--nodes");
    expect(() => parseFlags(['--port', '9700'], {})).toThrow('spelled -p/--dispy-port PORT here');
    expect(() => parseFlags(['--dest_path_prefix', '/x'], {})).toThrow('replaced by --dest-path DIR');
    expect(() => parseFlags(['--fair_cluster_scheduler'], {})).toThrow('computations of equal priority take turns');
    expect(() => parseFlags(['--early-cluster-scheduler'], {})).toThrow('computations of equal priority take turns');
    expect(() => parseFlags(['--cluster-secrets', 'x'], {})).toThrow(
      'unknown flag --cluster-secrets; did you mean --cluster-secret?; see --help',
    );
  });

  it('reads each secret from a private file, as dispynode does, but not with its flag too', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dispyscheduler-flags-'));
    try {
      const file = path.join(dir, 'secret');
      writeFileSync(file, 'from file\n', { mode: 0o600 });
      expect(parseFlags(['--node-secret-file', file, '--cluster_secret_file', file], { DISPY_NODE_SECRET: 'env' })).toMatchObject({
        options: { nodeSecret: 'from file', clusterSecret: 'from file' },
        warnings: [],
      });
      expect(() => parseFlags(['--node-secret', 'x', '--node-secret-file', file], {})).toThrow(
        'give the secret once: --node-secret or --node-secret-file, not both',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists every flag of API.md in --help', () => {
    const help = helpText();
    for (const flag of [
      '--nodes',
      '--host',
      '--ext-host',
      '--dispy-port',
      '--node-port',
      '--scheduler-port',
      '--node-secret',
      '--cluster-secret',
      '--node-keyfile',
      '--node-certfile',
      '--cluster-keyfile',
      '--cluster-certfile',
      '--node-cafile',
      '--node-cert-fingerprint',
      '--cluster-cafile',
      '--require-client-cert',
      '--pulse-interval',
      '--ping-interval',
      '--zombie-interval',
      '--msg-timeout',
      '--httpd',
      '--httpd-port',
      '--httpd-token',
      '--cooperative',
      '--cleanup-nodes',
      '--clean',
      '--daemon',
      '--config',
      '--save-config',
    ]) {
      expect(help).toContain(flag);
    }
  });
});
