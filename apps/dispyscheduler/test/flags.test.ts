import { describe, expect, it } from 'vitest';
import { helpText, parseFlags } from '../src/flags.js';

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

  it('refuses the TLS flags clearly until TLS is supported, and a wrong number naming the flag', () => {
    expect(() => parseFlags(['--cluster-certfile', 'c.pem'], {})).toThrow(/--cluster-certfile: TLS toward clients is not supported/);
    expect(() => parseFlags(['--node-keyfile', 'k.pem'], {})).toThrow(/--node-keyfile: TLS toward nodes is not supported/);
    expect(() => parseFlags(['--scheduler-port', 'x'], {})).toThrow(/--scheduler-port must be an integer/);
    expect(() => parseFlags(['--msg-timeout', '-1'], {})).toThrow();
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
      '--pulse-interval',
      '--ping-interval',
      '--zombie-interval',
      '--msg-timeout',
      '--httpd',
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
