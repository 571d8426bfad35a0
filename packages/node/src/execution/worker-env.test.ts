import { describe, expect, it } from 'vitest';
import { workerEnv } from './worker-env.js';

describe('workerEnv', () => {
  it('leaves out every variable that carries a secret of dispy, and keeps the rest', () => {
    const env = workerEnv({
      PATH: '/usr/bin',
      HOME: '/home/u',
      DISPY_SECRET: 's',
      DISPY_NODE_SECRET: 's',
      DISPY_ADMIN_SECRET: 's',
      dispy_secret: 's',
      DISPY_TLS_KEY_PASSPHRASE: 's',
      DISPY_LOGLEVEL: 'debug',
    });
    expect(env).toEqual({ PATH: '/usr/bin', HOME: '/home/u', DISPY_LOGLEVEL: 'debug' });
  });
});
