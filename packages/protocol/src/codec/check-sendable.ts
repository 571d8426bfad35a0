import { types } from 'node:util';
import { UnsendableValueError } from '../errors/unsendable-value-error.js';
import { isShippedInstance } from './shipped-classes.js';

/**
 * Throws UnsendableValueError, naming where and why, when `value` holds anything the
 * structured-clone codec cannot carry faithfully: functions, symbols, weak collections, promises,
 * or instances of classes the other side does not know.
 */
export function checkSendable(value: unknown, path: string): void {
  const seen = new Set<object>();
  const stack: Array<[unknown, string]> = [[value, path]];
  while (stack.length > 0) {
    const [current, where] = stack.pop()!;
    switch (typeof current) {
      case 'function':
        throw new UnsendableValueError(
          where,
          `it is a function (${describeFunction(current)}); ship code in the computation or depends, not in values`,
        );
      case 'symbol':
        throw new UnsendableValueError(where, `it is a symbol (${String(current)})`);
      case 'object':
        break;
      default:
        continue;
    }
    if (current === null || seen.has(current)) continue;
    seen.add(current);
    const object = current;
    if (types.isPromise(object)) {
      throw new UnsendableValueError(where, 'it is a Promise; await it and send its value');
    }
    if (types.isWeakMap(object) || types.isWeakSet(object) || object instanceof WeakRef) {
      throw new UnsendableValueError(where, 'weak collections and references cannot be copied');
    }
    // The codec turns these into plain objects, silently: refuse them rather than corrupt them.
    if (types.isSharedArrayBuffer(object)) {
      throw new UnsendableValueError(where, 'a SharedArrayBuffer cannot be copied; send a typed array or an ArrayBuffer');
    }
    if (types.isBoxedPrimitive(object)) {
      throw new UnsendableValueError(where, 'it is a boxed primitive (new Number(…), Object(…)); send the primitive value');
    }
    if (object instanceof AggregateError) {
      throw new UnsendableValueError(where, 'an AggregateError does not survive the codec; send its errors as an array');
    }
    if (types.isArrayBufferView(object) || types.isAnyArrayBuffer(object)) continue;
    if (types.isDate(object) || types.isRegExp(object)) continue;
    if (types.isMap(object)) {
      for (const [key, entry] of object) {
        stack.push([key, `${where} (a Map key)`], [entry, `${where}.get(${preview(key)})`]);
      }
      continue;
    }
    if (types.isSet(object)) {
      for (const entry of object) stack.push([entry, `${where} (a Set entry)`]);
      continue;
    }
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) stack.push([object[i], `${where}[${i}]`]);
      continue;
    }
    if (!types.isNativeError(object) && !isShippedInstance(object)) {
      const proto = Object.getPrototypeOf(object) as { constructor?: { name?: string } } | null;
      if (proto !== Object.prototype && proto !== null) {
        const name = proto?.constructor?.name || 'anonymous class';
        throw new UnsendableValueError(
          where,
          `it is an instance of class ${name}, which the other side does not have; list the class in depends, or send a plain object`,
        );
      }
    }
    for (const key of Object.keys(object)) {
      stack.push([(object as Record<string, unknown>)[key], `${where}.${key}`]);
    }
  }
}

function describeFunction(fn: Function): string {
  return fn.name ? `function ${fn.name}` : 'an anonymous function';
}

function preview(key: unknown): string {
  return typeof key === 'string' ? JSON.stringify(key) : String(key);
}
