import { createHmac, scryptSync } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dispy } from '../schema/schema.js';
import { PROTOCOL_VERSION } from '../version.js';
import { DATAGRAM_IV_BYTES, DATAGRAM_TAG_BYTES, DATAGRAM_WINDOW_MS, MAX_DATAGRAM_BYTES, openDatagram, sealDatagram } from './datagram.js';
import { ReplayGuard } from './replay-guard.js';
import { DropSummary, SUMMARY_INTERVAL_MS } from '../internal/drop-summary.js';
import { clientProof, nodeProof } from './handshake.js';
import { NONCE_BYTES, datagramKey, mac, macEquals, newNonce, secretKey, shortSecretWarning } from './hmac.js';
import { pskKey } from '../tls/psk.js';

const bytes = (text: string): Buffer => Buffer.from(text);
const NODE_NONCE = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const CLIENT_NONCE = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');

describe('the derived secret key', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('is scrypt over the secret once per process, salted by the label and DISPY_SECRET_SALT', () => {
    const first = secretKey('a secret for the cache');
    expect(secretKey('a secret for the cache')).toBe(first);
    vi.stubEnv('DISPY_SECRET_SALT', 'site-a');
    const salted = secretKey('a secret for the cache');
    expect(salted.equals(first)).toBe(false);
    expect(
      salted.equals(scryptSync('a secret for the cache', 'dispy-secret-v1\0site-a', 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 << 20 })),
    ).toBe(true);
    // Another deployment's salt gives other MACs for the same secret.
    expect(mac('a secret for the cache', 'l').equals(mac('a secret for the cache', 'l'))).toBe(true);
    vi.stubEnv('DISPY_SECRET_SALT', 'site-b');
    expect(mac('a secret for the cache', 'l').equals(mac('a secret for the cache', 'l'))).toBe(true);
    expect(secretKey('a secret for the cache').equals(salted)).toBe(false);
  });

  it('is no key at all without a secret', () => {
    expect(secretKey('')).toHaveLength(0);
  });

  it('warns once per process about a secret shorter than 16 characters', () => {
    expect(shortSecretWarning('')).toBeUndefined();
    expect(shortSecretWarning('sixteen chars ok')).toBeUndefined();
    expect(shortSecretWarning('sunshine42')).toMatch(/shorter than 16 characters/);
    expect(shortSecretWarning('sunshine42')).toBeUndefined();
  });

  it("makes the secret's TLS pre-shared key apart from its MAC and datagram keys, one per secret", () => {
    const psk = pskKey('sesame');
    expect(psk).toHaveLength(32);
    expect(pskKey('sesame')).toBe(psk);
    expect(psk.equals(secretKey('sesame'))).toBe(false);
    expect(psk.equals(datagramKey('sesame'))).toBe(false);
    expect(pskKey('other').equals(psk)).toBe(false);
  });
});

describe('mac', () => {
  it('is HMAC-SHA256 over the label, then each part prefixed by its 4-byte big-endian length', () => {
    // Keyed by the secret's scrypt derivation, salted with the fixed label (no DISPY_SECRET_SALT).
    const key = scryptSync('sesame', 'dispy-secret-v1\0', 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    const expected = createHmac('sha256', key)
      .update('label')
      .update(Buffer.from('00000002', 'hex'))
      .update('ab')
      .update(Buffer.from('00000000', 'hex'))
      .update(Buffer.from('00000001', 'hex'))
      .update('c')
      .digest();
    const actual = mac('sesame', 'label', bytes('ab'), new Uint8Array(0), bytes('c'));
    expect(actual).toHaveLength(32);
    expect(actual.equals(expected)).toBe(true);
  });

  it('length-prefixes parts so that ("ab","c") and ("a","bc") differ', () => {
    const left = mac('s', 'l', bytes('ab'), bytes('c'));
    const right = mac('s', 'l', bytes('a'), bytes('bc'));
    expect(left.equals(right)).toBe(false);
    // Neither equals the MAC of the parts run together.
    expect(left.equals(mac('s', 'l', bytes('abc')))).toBe(false);
  });

  it('is deterministic and depends on the secret, the label and every part', () => {
    const base = mac('s', 'l', bytes('x'));
    expect(mac('s', 'l', bytes('x')).equals(base)).toBe(true);
    expect(mac('t', 'l', bytes('x')).equals(base)).toBe(false);
    expect(mac('s', 'm', bytes('x')).equals(base)).toBe(false);
    expect(mac('s', 'l', bytes('y')).equals(base)).toBe(false);
    expect(mac('s', 'l', bytes('x'), new Uint8Array(0)).equals(base)).toBe(false);
  });

  it('works with an empty secret', () => {
    expect(mac('', 'l')).toHaveLength(32);
    expect(mac('', 'l').equals(mac('x', 'l'))).toBe(false);
  });
});

describe('macEquals', () => {
  const expected = mac('secret', 'label', bytes('part'));

  it('is true for the same MAC, including a copy in a plain Uint8Array', () => {
    expect(macEquals(expected, mac('secret', 'label', bytes('part')))).toBe(true);
    expect(macEquals(expected, new Uint8Array(expected))).toBe(true);
  });

  it('is false for a MAC made with another secret', () => {
    expect(macEquals(expected, mac('other', 'label', bytes('part')))).toBe(false);
  });

  it('is false for undefined, null, empty, short and long input without throwing', () => {
    expect(macEquals(expected, undefined)).toBe(false);
    expect(macEquals(expected, null)).toBe(false);
    expect(macEquals(expected, new Uint8Array(0))).toBe(false);
    expect(macEquals(expected, expected.subarray(0, 31))).toBe(false);
    expect(macEquals(expected, expected.subarray(0, 16))).toBe(false);
    expect(macEquals(expected, Buffer.concat([expected, Buffer.alloc(1)]))).toBe(false);
  });

  it('is false when a single bit differs', () => {
    for (const index of [0, 15, 31]) {
      const tampered = Buffer.from(expected);
      tampered[index]! ^= 0x01;
      expect(macEquals(expected, tampered), `bit flipped in byte ${index}`).toBe(false);
    }
  });
});

describe('nonces', () => {
  it('are NONCE_BYTES (16) random bytes, fresh each time', () => {
    expect(NONCE_BYTES).toBe(16);
    const a = newNonce();
    const b = newNonce();
    expect(a).toHaveLength(16);
    expect(b).toHaveLength(16);
    expect(a.equals(b)).toBe(false);
  });
});

describe('handshake proofs', () => {
  it('the client proof and the node proof differ for the same nonces (labels differ)', () => {
    // As computed in one session: each side puts the other's nonce first.
    const client = clientProof('secret', NODE_NONCE, CLIENT_NONCE);
    const node = nodeProof('secret', CLIENT_NONCE, NODE_NONCE);
    expect(client.equals(node)).toBe(false);
    // Even with the nonces in the same order, the label alone keeps them apart.
    expect(clientProof('secret', NODE_NONCE, CLIENT_NONCE).equals(nodeProof('secret', NODE_NONCE, CLIENT_NONCE))).toBe(false);
  });

  it('are the labelled MACs over both nonces', () => {
    expect(clientProof('secret', NODE_NONCE, CLIENT_NONCE).equals(mac('secret', 'dispy-client', NODE_NONCE, CLIENT_NONCE))).toBe(true);
    expect(nodeProof('secret', CLIENT_NONCE, NODE_NONCE).equals(mac('secret', 'dispy-node', CLIENT_NONCE, NODE_NONCE))).toBe(true);
  });

  it('a proof from the same secret verifies; one made with another secret does not', () => {
    const expected = clientProof('secret', NODE_NONCE, CLIENT_NONCE);
    expect(macEquals(expected, clientProof('secret', NODE_NONCE, CLIENT_NONCE))).toBe(true);
    expect(macEquals(expected, clientProof('guess', NODE_NONCE, CLIENT_NONCE))).toBe(false);
    const expectedNode = nodeProof('secret', CLIENT_NONCE, NODE_NONCE);
    expect(macEquals(expectedNode, nodeProof('guess', CLIENT_NONCE, NODE_NONCE))).toBe(false);
  });

  it('a recorded proof does not verify against a fresh node nonce (no replay)', () => {
    const recorded = clientProof('secret', NODE_NONCE, CLIENT_NONCE);
    const freshNodeNonce = newNonce();
    expect(macEquals(clientProof('secret', freshNodeNonce, CLIENT_NONCE), recorded)).toBe(false);
  });

  it("one side's proof cannot stand in for the other's", () => {
    // A node that reflects the client's proof back must not pass as knowing the secret.
    const clientSent = clientProof('secret', NODE_NONCE, CLIENT_NONCE);
    expect(macEquals(nodeProof('secret', CLIENT_NONCE, NODE_NONCE), clientSent)).toBe(false);
  });
});

describe('discovery datagrams', () => {
  const ping: dispy.IDatagramBody = { ping: { clientName: 'alice', clientPort: 51347 } };

  it('opens as authentic with the same secret, with the version and body intact', () => {
    const sealed = sealDatagram('secret', ping, { nonce: NODE_NONCE, sentAt: 1_700_000_000_123 });
    expect(Buffer.isBuffer(sealed)).toBe(true);
    const opened = openDatagram('secret', sealed);
    expect(opened).toBeDefined();
    expect(opened!.authentic).toBe(true);
    expect(opened!.version).toBe(PROTOCOL_VERSION);
    expect(opened!.body.kind).toBe('ping');
    expect(Buffer.from(opened!.body.nonce).equals(NODE_NONCE)).toBe(true);
    expect(opened!.body.sentAt).toBe(1_700_000_000_123);
    expect(opened!.body.ping!.clientName).toBe('alice');
    expect(opened!.body.ping!.clientPort).toBe(51347);
  });

  it('opens as not authentic with another secret, knowing nothing of it but its nonce', () => {
    const sealed = sealDatagram('secret', ping, { nonce: NODE_NONCE });
    for (const other of ['other secret', '']) {
      const opened = openDatagram(other, sealed);
      expect(opened).toBeDefined();
      expect(opened!.authentic).toBe(false);
      expect(opened!.body.kind).toBeUndefined();
      expect(opened!.body.ping).toBeNull();
      expect(Buffer.from(opened!.body.nonce).equals(NODE_NONCE)).toBe(true);
    }
  });

  it('encrypts the body with a secret: a reply names nothing of the node in its bytes', () => {
    const info = { nonce: CLIENT_NONCE, name: 'node-zanzibar', platform: 'plan9-mips', tcpHost: '192.0.2.77', cpus: 8, tcpPort: 51348 };
    const sealed = sealDatagram('secret', { reply: info });
    const text = sealed.toString('latin1');
    for (const word of ['node-zanzibar', 'zanzibar', 'plan9', '192.0.2.77']) expect(text).not.toContain(word);
    expect(sealed.includes(CLIENT_NONCE)).toBe(false);
    const datagram = dispy.Datagram.decode(sealed);
    expect(datagram.iv).toHaveLength(DATAGRAM_IV_BYTES);
    expect(datagram.mac).toHaveLength(DATAGRAM_TAG_BYTES);
    expect(datagram.nonce).toHaveLength(NONCE_BYTES);
    // A fresh IV each time: the same body never encrypts to the same bytes.
    const again = dispy.Datagram.decode(sealDatagram('secret', { reply: info }, { nonce: Buffer.from(datagram.nonce), sentAt: 1 }));
    const twice = dispy.Datagram.decode(sealDatagram('secret', { reply: info }, { nonce: Buffer.from(datagram.nonce), sentAt: 1 }));
    expect(Buffer.from(again.iv).equals(twice.iv)).toBe(false);
    expect(Buffer.from(again.body).equals(twice.body)).toBe(false);
    const opened = openDatagram('secret', sealed)!;
    expect(opened.authentic).toBe(true);
    expect(opened.body.reply?.name).toBe('node-zanzibar');
    expect(opened.body.reply?.platform).toBe('plan9-mips');
  });

  it('opens as not authentic when any byte of the IV, tag, body, nonce or version was changed', () => {
    const sealed = dispy.Datagram.decode(sealDatagram('secret', ping));
    const flip = (field: Uint8Array, at: number): Uint8Array => {
      const copy = Buffer.from(field);
      copy[at] = copy[at]! ^ 0x01;
      return copy;
    };
    const encode = (changes: Partial<dispy.IDatagram>): Buffer =>
      Buffer.from(dispy.Datagram.encode({ ...dispy.Datagram.toObject(sealed, { bytes: Buffer }), ...changes }).finish());
    expect(openDatagram('secret', encode({}))?.authentic).toBe(true);
    const altered: Partial<dispy.IDatagram>[] = [{ version: PROTOCOL_VERSION + 1 }, { version: PROTOCOL_VERSION - 1 }];
    for (const field of ['iv', 'mac', 'body', 'nonce'] as const)
      for (const at of [0, Math.floor(sealed[field].length / 2), sealed[field].length - 1])
        altered.push({ [field]: flip(sealed[field], at) });
    for (const changes of altered) {
      const opened = openDatagram('secret', encode(changes));
      expect(opened?.authentic ?? false).toBe(false);
      expect(opened?.body.ping ?? null).toBeNull();
    }
    // Every byte of the whole datagram, one at a time: never authentic, never a throw.
    const bytes = encode({});
    for (let at = 0; at < bytes.length; at++) {
      const tampered = Buffer.from(bytes);
      tampered[at] = tampered[at]! ^ 0x80;
      expect(openDatagram('secret', tampered)?.authentic ?? false).toBe(false);
    }
  });

  it('with the empty secret: the body in the clear under an HMAC over the version and body', () => {
    const sealed = sealDatagram('', ping, { nonce: NODE_NONCE });
    const datagram = dispy.Datagram.decode(sealed);
    expect(datagram.iv).toHaveLength(0);
    expect(datagram.nonce).toHaveLength(0);
    const opened = openDatagram('', sealed)!;
    expect(opened.authentic).toBe(true);
    expect(opened.body.ping?.clientName).toBe('alice');
    expect(Buffer.from(opened.body.nonce).equals(NODE_NONCE)).toBe(true);
    // Readable with any secret (how a refusal reaches a client of another one), but not authentic.
    const withOurs = openDatagram('secret', sealed)!;
    expect(withOurs.authentic).toBe(false);
    expect(withOurs.body.ping?.clientName).toBe('alice');
    // The version is under the MAC.
    const moved = Buffer.from(dispy.Datagram.encode({ ...datagram, version: PROTOCOL_VERSION + 1 }).finish());
    expect(openDatagram('', moved)?.authentic).toBe(false);
    expect(openDatagram('', moved)?.version).toBe(PROTOCOL_VERSION + 1);
  });

  it('opens as not authentic when the body was altered in transit (empty secret)', () => {
    const sealed = sealDatagram('', ping);
    const at = sealed.indexOf('alice');
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.from(sealed);
    tampered.write('mallo', at); // same length: still decodes
    const opened = openDatagram('', tampered);
    expect(opened?.body.ping?.clientName).toBe('mallo');
    expect(opened?.authentic).toBe(false);
  });

  it('opens as not authentic when the MAC is missing', () => {
    const body = dispy.DatagramBody.encode(ping).finish();
    const unsigned = Buffer.from(dispy.Datagram.encode({ version: PROTOCOL_VERSION, body }).finish());
    for (const secret of ['secret', '']) {
      const opened = openDatagram(secret, unsigned);
      expect(opened?.body.kind).toBe('ping');
      expect(opened?.authentic).toBe(false);
    }
  });

  it('returns undefined for bytes that are not a datagram', () => {
    expect(openDatagram('secret', Buffer.from('not a dispy datagram at all'))).toBeUndefined();
    expect(openDatagram('secret', Buffer.from('ffffffffffffffff', 'hex'))).toBeUndefined();
    expect(openDatagram('secret', Buffer.alloc(0))).toBeUndefined();
    // A well-formed Datagram whose body holds no known kind.
    const kindless = Buffer.from(
      dispy.Datagram.encode({ version: PROTOCOL_VERSION, mac: mac('', 'dispy-datagram'), body: new Uint8Array(0) }).finish(),
    );
    expect(openDatagram('secret', kindless)).toBeUndefined();
    // An IV or a clear nonce of the wrong size.
    const sealedWith = dispy.Datagram.decode(sealDatagram('secret', ping));
    for (const changes of [{ iv: new Uint8Array(11) }, { nonce: new Uint8Array(15) }, { iv: new Uint8Array(0), nonce: new Uint8Array(16) }])
      expect(openDatagram('secret', Buffer.from(dispy.Datagram.encode({ ...sealedWith, ...changes }).finish()))).toBeUndefined();
    // A sealed datagram cut short.
    const sealed = sealDatagram('secret', ping);
    expect(openDatagram('secret', sealed.subarray(0, sealed.length - 3))).toBeUndefined();
  });

  it('accepts a datagram of exactly MAX_DATAGRAM_BYTES, refuses to seal one byte more, and drops larger ones read', () => {
    expect(MAX_DATAGRAM_BYTES).toBe(1200);
    const sealedOfSize = (nameLength: number) =>
      sealDatagram('secret', { reply: { nonce: CLIENT_NONCE, name: 'n'.repeat(nameLength), cpus: 8, tcpPort: 51348 } });
    let nameLength = 1000;
    while (sealedOfSize(nameLength).length < MAX_DATAGRAM_BYTES) nameLength++;
    const atLimit = sealedOfSize(nameLength);
    expect(atLimit).toHaveLength(MAX_DATAGRAM_BYTES);
    const opened = openDatagram('secret', atLimit);
    expect(opened?.authentic).toBe(true);
    expect(opened?.body.reply?.name).toHaveLength(nameLength);

    expect(() => sealedOfSize(nameLength + 1)).toThrow(/1201 bytes exceeds 1200/);
    const over = Buffer.concat([atLimit, Buffer.from([0])]);
    expect(openDatagram('secret', over)).toBeUndefined();
  });

  it('MACs the version and body under its own label with the empty secret, not usable as a handshake proof', () => {
    const sealed = dispy.Datagram.decode(sealDatagram('', ping));
    const version = Buffer.from([0, 0, 0, PROTOCOL_VERSION]);
    expect(Buffer.from(sealed.mac).equals(mac('', 'dispy-datagram', version, sealed.body))).toBe(true);
    expect(Buffer.from(sealed.mac).equals(mac('', 'dispy-client', version, sealed.body))).toBe(false);
  });
});

describe('discovery datagrams: time, nonce and padding under the MAC', () => {
  it('stamps each datagram with the time and a fresh nonce, both under the MAC', () => {
    const before = Date.now();
    const first = openDatagram('secret', sealDatagram('secret', { announce: { tcpPort: 1 } }))!;
    const second = openDatagram('secret', sealDatagram('secret', { announce: { tcpPort: 1 } }))!;
    expect(first.body.sentAt).toBeGreaterThanOrEqual(before);
    expect(first.body.sentAt).toBeLessThanOrEqual(Date.now());
    expect(first.body.nonce).toHaveLength(NONCE_BYTES);
    expect(Buffer.from(first.body.nonce).equals(second.body.nonce)).toBe(false);
    // Moving the time changes the MAC: a stale datagram cannot be made fresh without the secret.
    const sealed = dispy.Datagram.decode(sealDatagram('', { announce: { tcpPort: 1 } }, { sentAt: 1000 }));
    const body = dispy.DatagramBody.decode(sealed.body);
    body.sentAt = Date.now();
    const moved = Buffer.from(dispy.Datagram.encode({ ...sealed, body: dispy.DatagramBody.encode(body).finish() }).finish());
    expect(openDatagram('', moved)?.authentic).toBe(false);
  });

  it('pads a datagram to the size asked, exactly, the padding under the MAC', () => {
    for (const secret of ['secret', ''])
      for (const name of ['', 'a', 'x'.repeat(100), 'y'.repeat(255)]) {
        const padded = sealDatagram(secret, { ping: { clientName: name, clientPort: 51347 } }, { padTo: MAX_DATAGRAM_BYTES });
        expect(padded).toHaveLength(MAX_DATAGRAM_BYTES);
        const opened = openDatagram(secret, padded)!;
        expect(opened.authentic).toBe(true);
        expect(opened.body.ping?.clientName).toBe(name);
      }
    // The largest reply a node sends (a 255-character name, long platform and host) fits in a padded ping.
    const largest = (secret: string): Buffer =>
      sealDatagram(secret, {
        reply: {
          nonce: NODE_NONCE,
          name: '\u20ac'.repeat(255),
          cpus: 4096,
          totalCpus: 4096,
          platform: 'linux-x64 node-20.99.99',
          tcpHost: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
          tcpPort: 65535,
          busy: true,
          availInfo: { cpu: 99.5, memory: 2 ** 40, disk: 2 ** 50, swap: 12.5 },
        },
      });
    // With a secret (IV, tag and clear nonce) as without (HMAC), and the refusal a node sends.
    expect(largest('secret').length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
    expect(largest('').length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
    expect(largest('secret').length).toBeLessThanOrEqual(largest('').length);
  });
});

describe('ReplayGuard', () => {
  const nonce = (n: number): Buffer => Buffer.alloc(NONCE_BYTES, n);

  it('passes a fresh datagram once, then calls it replayed', () => {
    let now = 1_000_000;
    const guard = new ReplayGuard({ now: () => now });
    expect(guard.check({ sentAt: now, nonce: nonce(1) })).toBe('fresh');
    expect(guard.check({ sentAt: now, nonce: nonce(1) })).toBe('replayed');
    now += DATAGRAM_WINDOW_MS; // still within the window: still remembered
    expect(guard.check({ sentAt: now - DATAGRAM_WINDOW_MS, nonce: nonce(1) })).toBe('replayed');
    expect(guard.check({ sentAt: now, nonce: nonce(2) })).toBe('fresh');
  });

  it('calls stale a datagram sent more than the window before or after our clock', () => {
    const now = 1_000_000_000;
    const guard = new ReplayGuard({ now: () => now });
    expect(guard.check({ sentAt: now - DATAGRAM_WINDOW_MS - 1, nonce: nonce(1) })).toBe('stale');
    expect(guard.check({ sentAt: now + DATAGRAM_WINDOW_MS + 1, nonce: nonce(2) })).toBe('stale');
    expect(guard.check({ sentAt: now - DATAGRAM_WINDOW_MS, nonce: nonce(3) })).toBe('fresh');
    expect(guard.check({ sentAt: now + DATAGRAM_WINDOW_MS, nonce: nonce(4) })).toBe('fresh');
    expect(guard.size).toBe(2); // stale ones are not remembered
  });

  it('calls malformed a datagram without time or with a nonce of the wrong size', () => {
    const guard = new ReplayGuard({ now: () => 5000 });
    expect(guard.check({ sentAt: 0, nonce: nonce(1) })).toBe('malformed');
    expect(guard.check({ sentAt: 5000, nonce: Buffer.alloc(8) })).toBe('malformed');
    expect(guard.check({ sentAt: 5000 })).toBe('malformed');
  });

  it('forgets a nonce once its datagram can no longer pass as fresh, and keeps at most its capacity', () => {
    let now = 1_000_000;
    const guard = new ReplayGuard({ now: () => now, windowMs: 1000, capacity: 3 });
    for (let i = 0; i < 3; i++) expect(guard.check({ sentAt: now, nonce: nonce(i) })).toBe('fresh');
    // Full: an authentic new datagram is dropped rather than an old nonce forgotten early.
    expect(guard.check({ sentAt: now, nonce: nonce(9) })).toBe('overflow');
    now += 2000; // twice the window after arrival: each of them is stale by now
    expect(guard.check({ sentAt: now - 2000, nonce: nonce(0) })).toBe('stale');
    expect(guard.check({ sentAt: now, nonce: nonce(9) })).toBe('fresh');
    expect(guard.size).toBe(1);
  });
});

describe('DropSummary', () => {
  it('logs the first drop at once, then one line a minute at most with the counts, and nothing when quiet', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    try {
      const lines: string[] = [];
      const logger = {
        level: 'debug' as const,
        debug: () => {},
        info: () => {},
        warn: (line: string) => lines.push(line),
        error: () => {},
      };
      const summary = new DropSummary(logger);
      summary.count('replayed');
      expect(lines).toEqual(['discovery datagrams dropped in the last minute: 1 replayed']);
      for (let i = 0; i < 1234; i++) summary.count('replayed');
      for (let i = 0; i < 5; i++) summary.count('stale');
      expect(lines).toHaveLength(1);
      vi.advanceTimersByTime(SUMMARY_INTERVAL_MS - 1);
      expect(lines).toHaveLength(1);
      vi.advanceTimersByTime(1);
      expect(lines[1]).toBe('discovery datagrams dropped in the last minute: 1,234 replayed, 5 stale');
      vi.advanceTimersByTime(SUMMARY_INTERVAL_MS); // a quiet minute: no line, and the timer stops
      expect(lines).toHaveLength(2);
      expect(vi.getTimerCount()).toBe(0);
      summary.count('stale');
      expect(lines[2]).toBe('discovery datagrams dropped in the last minute: 1 stale');
      summary.close();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
