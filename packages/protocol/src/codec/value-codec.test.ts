import { describe, expect, it } from 'vitest';
import { FrameError } from '../errors/frame-error.js';
import { UnsendableValueError } from '../errors/unsendable-value-error.js';
import { checkSendable } from './check-sendable.js';
import { decodeValue, encodeArguments, encodeValue } from './value-codec.js';

const roundTrip = <T>(value: T): T => decodeValue(encodeValue(value)) as T;

/** Runs `action` and returns the UnsendableValueError it throws (failing the test otherwise). */
function unsendable(action: () => unknown): UnsendableValueError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(UnsendableValueError);
    expect((error as UnsendableValueError).code).toBe('DISPY_ERR_UNSENDABLE');
    return error as UnsendableValueError;
  }
  throw new Error('expected an UnsendableValueError, but nothing was thrown');
}

describe('value codec round trips', () => {
  it('keeps primitives, null and undefined', () => {
    for (const value of [0, -1.5, 2 ** 53, 'text', '', true, false, null, NaN, Infinity]) {
      expect(roundTrip(value)).toEqual(value);
    }
    expect(roundTrip(undefined)).toBeUndefined();
  });

  it('keeps a Date, with its exact time', () => {
    const date = new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789));
    const decoded = roundTrip(date);
    expect(decoded).toBeInstanceOf(Date);
    expect(decoded.getTime()).toBe(date.getTime());
  });

  it('keeps a Map with object values and non-string keys', () => {
    const map = new Map<unknown, unknown>([
      [1, { a: 2 }],
      ['k', [1, 2]],
      [true, null],
    ]);
    const decoded = roundTrip(map);
    expect(decoded).toBeInstanceOf(Map);
    expect([...decoded.entries()]).toEqual([...map.entries()]);
    expect(decoded.get(1)).toEqual({ a: 2 });
  });

  it('keeps a Set and its insertion order', () => {
    const set = new Set<unknown>([3, 'a', 1]);
    const decoded = roundTrip(set);
    expect(decoded).toBeInstanceOf(Set);
    expect([...decoded]).toEqual([3, 'a', 1]);
  });

  it('keeps a RegExp with its flags', () => {
    const decoded = roundTrip(/a+b\d/gi);
    expect(decoded).toBeInstanceOf(RegExp);
    expect(decoded.source).toBe('a+b\\d');
    expect(decoded.flags).toBe('gi');
    expect(decoded.test('xAAB3')).toBe(true);
  });

  it('keeps small BigInts, negative ones and ones wider than 64 bits', () => {
    for (const value of [0n, 5n, -5n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n, 2n ** 100n + 7n, -(3n ** 90n)]) {
      const decoded = roundTrip(value);
      expect(typeof decoded).toBe('bigint');
      expect(decoded).toBe(value);
    }
  });

  it('keeps typed arrays with their type and contents', () => {
    const arrays = [
      new Uint8Array([0, 1, 255]),
      new Int8Array([-128, 127]),
      new Uint8ClampedArray([0, 255]),
      new Int16Array([-3, 30_000]),
      new Uint16Array([65_535]),
      new Int32Array([-(2 ** 31), 2 ** 31 - 1]),
      new Uint32Array([2 ** 32 - 1]),
      new Float32Array([1.5, -0.25]),
      new Float64Array([Math.PI, -1e300]),
      new BigInt64Array([-(2n ** 63n), 1n]),
      new BigUint64Array([2n ** 64n - 1n]),
    ];
    for (const array of arrays) {
      const decoded = roundTrip(array);
      expect(decoded.constructor).toBe(array.constructor);
      expect([...(decoded as Iterable<unknown>)]).toEqual([...(array as Iterable<unknown>)]);
    }
  });

  it('keeps a typed array that views part of a larger buffer as just that part', () => {
    const backing = new Float64Array([1, 2, 3, 4]);
    const view = new Float64Array(backing.buffer, 8, 2);
    const decoded = roundTrip(view);
    expect(decoded).toBeInstanceOf(Float64Array);
    expect([...decoded]).toEqual([2, 3]);
  });

  it('keeps an ArrayBuffer, a DataView and a typed array over shared memory (as a copy)', () => {
    const arrayBuffer = roundTrip(new Uint8Array([1, 2, 3]).buffer);
    expect(arrayBuffer).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(arrayBuffer)]).toEqual([1, 2, 3]);

    const view = new DataView(new ArrayBuffer(4));
    view.setUint32(0, 0xdeadbeef);
    const decodedView = roundTrip(view);
    expect(decodedView).toBeInstanceOf(DataView);
    expect(decodedView.getUint32(0)).toBe(0xdeadbeef);

    const shared = new Int32Array(new SharedArrayBuffer(8));
    shared.set([7, -7]);
    const decoded = roundTrip(shared);
    expect(decoded).toBeInstanceOf(Int32Array);
    expect([...decoded]).toEqual([7, -7]);
  });

  it('keeps a Buffer as a Buffer with the same bytes', () => {
    const buffer = Buffer.from('héllo, wörld');
    const decoded = roundTrip(buffer);
    expect(Buffer.isBuffer(decoded)).toBe(true);
    expect(decoded.equals(buffer)).toBe(true);
  });

  it('keeps an Error message and name, including built-in subclasses and a custom name', () => {
    const plain = roundTrip(new Error('plain failure'));
    expect(plain).toBeInstanceOf(Error);
    expect(plain.message).toBe('plain failure');
    expect(plain.name).toBe('Error');

    const typeError = roundTrip(new TypeError('bad type'));
    expect(typeError).toBeInstanceOf(TypeError);
    expect(typeError.name).toBe('TypeError');
    expect(typeError.message).toBe('bad type');

    const custom = new Error('quota exceeded');
    custom.name = 'QuotaError';
    const decoded = roundTrip(custom);
    expect(decoded).toBeInstanceOf(Error);
    expect(decoded.name).toBe('QuotaError');
    expect(decoded.message).toBe('quota exceeded');
  });

  it('keeps a cyclic object and shared references', () => {
    const node: { name: string; self?: unknown; children: unknown[] } = { name: 'root', children: [] };
    node.self = node;
    const shared = { n: 1 };
    node.children.push(shared, shared, node);
    const decoded = roundTrip(node);
    expect(decoded.name).toBe('root');
    expect(decoded.self).toBe(decoded);
    expect(decoded.children[0]).toEqual({ n: 1 });
    expect(decoded.children[0]).toBe(decoded.children[1]);
    expect(decoded.children[2]).toBe(decoded);
  });

  it('keeps nested arrays, empty ones included', () => {
    const nested = [1, [2, [3, [4, [5, []]]]], [], [[['deep']]], [{ a: [new Date(0)] }]];
    expect(roundTrip(nested)).toEqual(nested);
  });

  it('keeps objects with a null prototype', () => {
    const bare = Object.create(null) as Record<string, number>;
    bare.x = 1;
    expect(roundTrip(bare)).toEqual({ x: 1 });
  });

  it('encodeArguments produces the argument list as an array', () => {
    const args = [1, 'two', { three: 3 }, [4], new Map([[5, 5]])];
    expect(decodeValue(encodeArguments(args))).toEqual(args);
    expect(decodeValue(encodeArguments([]))).toEqual([]);
  });
});

describe('value codec wire format', () => {
  // Golden bytes: results saved by one version must stay readable by the next.
  const golden: Array<[string, unknown, string]> = [
    ['a small integer', 1, '01'],
    ['a short string', 'hi', 'a26869'],
    ['an array', [1, 'x'], '9201a178'],
    ['a Map', new Map([[1, 2]]), '810102'],
    ['a Date', new Date(0), 'd6ff00000000'],
    ['a 64-bit BigInt', 5n, 'd30000000000000005'],
    ['a BigInt over 64 bits', 2n ** 100n, 'd84200000010000000000000000000000000'],
  ];

  it.each(golden)('encodes %s to the expected bytes and decodes them back', (_what, value, hexBytes) => {
    expect(encodeValue(value).toString('hex')).toBe(hexBytes);
    expect(decodeValue(Buffer.from(hexBytes, 'hex'))).toEqual(value);
  });

  it('decodes a self-describing record (a plain object) with a fresh structure', () => {
    expect(decodeValue(Buffer.from('d4724091a16101', 'hex'))).toEqual({ a: 1 });
    expect(decodeValue(encodeValue({ a: 1, b: [true] }))).toEqual({ a: 1, b: [true] });
  });

  it('encodes an argument list exactly as the array value', () => {
    expect(encodeArguments([1, 'x']).equals(encodeValue([1, 'x']))).toBe(true);
  });
});

describe('values that cannot be sent', () => {
  it('names the argument (1-based) and the path of a function', () => {
    function transform(): void {}
    const error = unsendable(() => encodeArguments([1, { rows: [0, 0, 0, { transform }] }]));
    expect(error.path).toBe('argument 2.rows[3].transform');
    expect(error.message).toBe(
      'argument 2.rows[3].transform cannot be sent: it is a function (function transform); ' +
        'ship code in the computation or depends, not in values',
    );
  });

  it('names an anonymous function as such', () => {
    const error = unsendable(() => encodeArguments([() => 0]));
    expect(error.path).toBe('argument 1');
    expect(error.message).toContain('an anonymous function');
  });

  it('names the argument and path of a symbol', () => {
    const error = unsendable(() => encodeArguments(['ok', 'ok', { tag: Symbol('colour') }]));
    expect(error.path).toBe('argument 3.tag');
    expect(error.message).toContain('it is a symbol (Symbol(colour))');
  });

  it('names the argument of a Promise and says to await it', () => {
    const error = unsendable(() => encodeArguments([Promise.resolve(1)]));
    expect(error.path).toBe('argument 1');
    expect(error.message).toContain('Promise');
    expect(error.message).toContain('await it');
  });

  it('names the path of a WeakMap, a WeakSet and a WeakRef', () => {
    expect(unsendable(() => encodeArguments([{ cache: new WeakMap() }])).path).toBe('argument 1.cache');
    expect(unsendable(() => encodeArguments([{ cache: new WeakMap() }])).message).toContain('weak collections');
    expect(unsendable(() => encodeArguments([0, [new WeakSet()]])).path).toBe('argument 2[0]');
    expect(unsendable(() => encodeArguments([new WeakRef({})])).path).toBe('argument 1');
  });

  it('names the class of a user class instance', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const error = unsendable(() => encodeArguments([{ origin: { x: 0, y: 0 } }, { at: new Point(1, 2) }]));
    expect(error.path).toBe('argument 2.at');
    expect(error.message).toContain('instance of class Point');
    expect(error.message).toContain('send a plain object');
  });

  // The codec would turn these into plain objects without a word, so they are refused.
  it('refuses boxed primitives, which the codec would turn into plain objects', () => {
    for (const boxed of [Object(1), Object('text'), Object(true), Object(5n), Object(Symbol('s'))]) {
      const error = unsendable(() => encodeArguments([{ value: boxed }]));
      expect(error.path).toBe('argument 1.value');
      expect(error.message).toContain('boxed primitive');
    }
  });

  it('refuses a SharedArrayBuffer, which the codec would turn into an empty object', () => {
    const error = unsendable(() => encodeArguments([1, new SharedArrayBuffer(4)]));
    expect(error.path).toBe('argument 2');
    expect(error.message).toContain('SharedArrayBuffer');
  });

  it('refuses an AggregateError, whose errors the codec would garble', () => {
    const error = unsendable(() => encodeValue({ failure: new AggregateError([new Error('a')], 'all failed') }, 'the result'));
    expect(error.path).toBe('the result.failure');
    expect(error.message).toContain('AggregateError');
  });

  it('finds a function inside a Map value, a Map key and a Set', () => {
    expect(unsendable(() => encodeArguments([new Map([['k', () => 1]])])).path).toBe('argument 1.get("k")');
    expect(unsendable(() => encodeArguments([new Map([[() => 1, 'v']])])).path).toBe('argument 1 (a Map key)');
    expect(unsendable(() => encodeArguments([new Set([1, Symbol.iterator])])).path).toBe('argument 1 (a Set entry)');
  });

  it('finds an unsendable value inside a cyclic object without looping', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    cyclic.bad = Symbol('x');
    expect(unsendable(() => encodeArguments([cyclic])).path).toBe('argument 1.bad');
  });

  it('encodeValue names the value as told', () => {
    const error = unsendable(() => encodeValue({ f: () => 1 }, 'the result'));
    expect(error.message).toMatch(/^the result\.f cannot be sent/);
    expect(unsendable(() => encodeValue(Symbol('s'))).path).toBe('the value');
  });

  it('checkSendable accepts every kind of value the codec carries', () => {
    const value = {
      date: new Date(),
      map: new Map([[1, new Set([2])]]),
      re: /x/,
      big: 10n ** 30n,
      bytes: new Uint8Array(3),
      buffer: Buffer.alloc(2),
      arrayBuffer: new ArrayBuffer(4),
      error: new RangeError('r'),
      nested: [[[null, undefined]]],
      bare: Object.create(null) as unknown,
    };
    expect(() => checkSendable(value, 'v')).not.toThrow();
  });
});

describe('decodeValue of bad input', () => {
  it('decodes empty bytes to undefined', () => {
    expect(decodeValue(new Uint8Array(0))).toBeUndefined();
    expect(decodeValue(Buffer.alloc(0))).toBeUndefined();
  });

  it.each([
    ['a truncated array', 'dc0005'],
    ['a truncated string', 'a5616263'],
    ['trailing bytes after a value', 'ffff'],
    ['an unknown extension', 'd4'],
  ])('throws FrameError malformed for garbage (%s)', (_what, hexBytes) => {
    let thrown: unknown;
    try {
      decodeValue(Buffer.from(hexBytes, 'hex'));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(FrameError);
    expect((thrown as FrameError).code).toBe('DISPY_ERR_FRAME_MALFORMED');
    expect((thrown as FrameError).message).toMatch(/^malformed frame: value does not decode: /);
    expect((thrown as FrameError).cause).toBeInstanceOf(Error);
  });
});
