import type { Frame, FrameKind, dispy } from '@dispy/protocol';

export type { FrameKind } from '@dispy/protocol';

/**
 * The body of a frame of kind `K` as decoding yields it: an instance of its message class
 * (`setCpus` → `dispy.SetCpus`, with every field present), which the generated `Frame` only types
 * as the optional-field interface.
 */
export type FrameBody<K extends FrameKind> = InstanceType<(typeof dispy)[Capitalize<K>]>;

/** Marks a frame kind that may not arrive in this state: the peer broke the protocol. */
export const UNEXPECTED = 'unexpected here';

export type FrameHandler<K extends FrameKind> = (body: FrameBody<K>, frame: Frame, attachment: Buffer[] | undefined) => void;

/**
 * What to do with each kind of frame: a handler, or UNEXPECTED. Write a table as an object
 * literal with `satisfies FrameTable`: the compiler then reports a kind left out (a kind added
 * to the schema must be handled or refused explicitly) and a name that is no kind.
 */
export type FrameTable = { readonly [K in FrameKind]: FrameHandler<K> | typeof UNEXPECTED };

/** Calls the table's handler for `frame`; returns false when its kind is unexpected here. */
export function dispatchFrame(table: FrameTable, frame: Frame, attachment?: Buffer[]): boolean {
  const kind = frame.kind;
  if (kind === undefined) return false;
  // One handler per kind: the table's type ties each to its body, which a lookup by a kind only
  // known at run time cannot show the compiler.
  const handler = table[kind] as FrameHandler<FrameKind> | typeof UNEXPECTED;
  if (handler === UNEXPECTED) return false;
  handler(frame[kind] as FrameBody<FrameKind>, frame, attachment);
  return true;
}
