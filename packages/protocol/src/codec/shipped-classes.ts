import { addExtension } from 'msgpackr';

/*
 * Classes shipped in depends, by name: the codec writes their instances as the class's name and
 * own properties, and checkSendable lets them through. Its own module so that the codec and the
 * check both import it and not each other.
 */

/** msgpack extension type of instances of classes shipped in depends. */
const SHIPPED_INSTANCE = 0x44;
const shippedClasses = new Map<string, Function>();

/**
 * Lets instances of `cls` cross the wire as instances: they travel as the class's name and their
 * own properties, and arrive built on the class of that name registered on the other side (a
 * class in depends is registered on both). Unknown names arrive as plain objects.
 */
export function registerClass(name: string, cls: Function): void {
  if (shippedClasses.get(name) === cls) return;
  shippedClasses.set(name, cls);
  addExtension({
    Class: cls,
    type: SHIPPED_INSTANCE,
    write: (instance: object) => [instanceClassName(instance), { ...instance }],
    read: ([className, props]: [string, object]) => {
      const known = shippedClasses.get(className);
      return known ? Object.assign(Object.create(known.prototype as object) as object, props) : props;
    },
  });
}

/** True for an instance of a class registered with registerClass. */
export function isShippedInstance(value: object): boolean {
  const ctor = constructorOf(value);
  return typeof ctor === 'function' && shippedClasses.get(ctor.name) === ctor;
}

function instanceClassName(instance: object): string {
  const ctor = constructorOf(instance);
  return typeof ctor === 'function' ? ctor.name : '';
}

function constructorOf(value: object): unknown {
  return (Object.getPrototypeOf(value) as { constructor?: unknown } | null)?.constructor;
}
