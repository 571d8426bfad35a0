/*
 * Property-based fuzzing of the value codec (decodeValue) and of discovery datagrams
 * (openDatagram): random and corrupted bytes decode or are refused as the functions promise, and
 * never with another exception (see testing/fuzz.ts for the seed and the number of runs).
 */
import { describe, expect, it } from 'vitest';
import { DispyError } from '../src/errors/dispy-error.js';
import { ErrorCode } from '../src/errors/error-codes.js';
import { decodeValue, encodeValue } from '../src/codec/value-codec.js';
import { MAX_DATAGRAM_BYTES, openDatagram, sealDatagram } from '../src/auth/datagram.js';
import { dispy } from '../src/schema/schema.js';
import { bytes, fc, fuzzRuns, hostileString, mutate, mutation, u32 } from '../../../testing/fuzz.js';

/** decodeValue's outcome: the value, or the error it threw, which must be a FrameError (malformed). */
function decodeOrRefuse(bytes: Uint8Array): void {
  const before = Object.getOwnPropertyNames(Object.prototype).length;
  try {
    decodeValue(bytes);
  } catch (error) {
    expect(DispyError.isInstance(error), String(error)).toBe(true);
    expect((error as DispyError).code).toBe(ErrorCode.FRAME_MALFORMED);
  }
  // Whatever it decoded, nothing leaked into every object.
  expect(Object.getOwnPropertyNames(Object.prototype)).toHaveLength(before);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
}

/** Values the codec sends: plain data, and the structured-clone types it supports. */
const sendable = fc.oneof(
  fc.jsonValue(),
  fc.array(fc.oneof(fc.date(), fc.bigInt(), fc.uint8Array({ maxLength: 16 }), fc.float64Array({ maxLength: 4 }), fc.string()), {
    maxLength: 6,
  }),
  fc
    .dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.integer(), fc.string(), fc.constant(null)), { maxKeys: 6 })
    .map((object) => new Map(Object.entries(object))),
  fc.array(fc.integer(), { maxLength: 6 }).map((items) => new Set(items)),
);

describe('decodeValue, fuzzed', () => {
  it('decodes random bytes or throws a malformed-frame DispyError (3,000 runs)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), decodeOrRefuse), fuzzRuns(3000));
  });

  it('decodes corrupted and truncated encodings or throws a malformed-frame DispyError (3,000 runs)', () => {
    fc.assert(
      fc.property(sendable, fc.array(mutation, { minLength: 1, maxLength: 4 }), (value, mutations) => {
        decodeOrRefuse(mutate(encodeValue(value), mutations));
      }),
      fuzzRuns(3000),
    );
  });

  it('refuses, without allocating them, strings, binaries, arrays and maps whose header claims gigabytes (300 runs)', () => {
    // msgpack's 32-bit length headers: str32, bin32, array32, map32, ext32.
    fc.assert(
      fc.property(
        fc.constantFrom(0xdb, 0xc6, 0xdd, 0xdf, 0xc9),
        fc.integer({ min: 1 << 20, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 32 }),
        (type, length, rest) => {
          const header = Buffer.alloc(5);
          header[0] = type;
          header.writeUInt32BE(length, 1);
          decodeOrRefuse(Buffer.concat([header, rest]));
        },
      ),
      fuzzRuns(300),
    );
  });
});

describe('openDatagram, fuzzed', () => {
  const body = fc.oneof(
    fc.record({ ping: fc.record({ nonce: bytes, clientName: hostileString, clientPort: u32 }, { requiredKeys: [] }) }),
    fc.record({
      reply: fc.record({ nonce: bytes, name: hostileString, cpus: u32, tcpHost: hostileString, tcpPort: u32 }, { requiredKeys: [] }),
    }),
    fc.record({ refused: fc.record({ nonce: bytes, reason: hostileString }, { requiredKeys: [] }) }),
    fc.record({ announce: fc.record({ name: hostileString, tcpPort: u32, tcpHost: hostileString }, { requiredKeys: [] }) }),
    fc.record({
      relayedReply: fc.record(
        { sourceHost: hostileString, reply: fc.record({ nonce: bytes, name: hostileString, tcpPort: u32 }, { requiredKeys: [] }) },
        { requiredKeys: [] },
      ),
    }),
  );

  it('never throws and never calls random bytes authentic (3,000 runs)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: MAX_DATAGRAM_BYTES + 100 }), fc.string({ maxLength: 20 }), (bytes, secret) => {
        const opened = openDatagram(secret, Buffer.from(bytes));
        expect(opened?.authentic ?? false).toBe(false);
      }),
      fuzzRuns(3000),
    );
  });

  it('calls a corrupted datagram authentic only when its body is the one sealed (3,000 runs)', () => {
    fc.assert(
      fc.property(body, fc.array(mutation, { minLength: 1, maxLength: 4 }), (sent, mutations) => {
        let sealed: Buffer;
        try {
          sealed = sealDatagram('sesame', sent);
        } catch (error) {
          // A body too large to send is refused when sealed, as an OptionError.
          expect(DispyError.isInstance(error)).toBe(true);
          return;
        }
        // The body as sealed (with a secret the datagram holds it encrypted, its nonce beside it).
        const original = Buffer.from(dispy.DatagramBody.encode(openDatagram('sesame', sealed)!.body).finish());
        const opened = openDatagram('sesame', mutate(sealed, mutations));
        if (opened?.authentic) expect(Buffer.from(dispy.DatagramBody.encode(opened.body).finish()).equals(original)).toBe(true);
        expect(openDatagram('another secret', mutate(sealed, mutations))?.authentic ?? false).toBe(false);
      }),
      fuzzRuns(3000),
    );
  });
});
