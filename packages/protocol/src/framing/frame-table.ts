import type { dispy } from '../schema/schema.js';
import type { Frame } from './framed-socket.js';
import type { FrameKind } from './frame-kinds.js';

/**
 * The body of a frame of kind `K` as decoding yields it: an instance of its message class
 * (`setCpus` → `dispy.SetCpus`, with every field present), which the generated `Frame` only types
 * as the optional-field interface.
 */
export type FrameBody<K extends FrameKind> = InstanceType<(typeof dispy)[Capitalize<K>]>;

/** Marks a frame kind that may not arrive where the table is used: the peer broke the protocol. */
export const UNEXPECTED = 'unexpected';

/** Handles one kind of frame; `Args` are what the table's owner passes along (e.g. the peer). */
export type FrameHandler<K extends FrameKind, Args extends unknown[] = []> = (
  body: FrameBody<K>,
  frame: Frame,
  attachment: Buffer[] | undefined,
  ...args: Args
) => void;

/**
 * What to do with each kind of frame: a handler, or a mark that says why there is none
 * (`UNEXPECTED`, or a mark of the owner's, such as the scheduler's `'late'` for answers whose
 * request has ended). Write a table as an object literal with `satisfies FrameTable<...>`: the
 * compiler then reports a kind left out (a kind added to the schema must be handled or marked
 * explicitly on each side) and a name that is no kind. dask's worker handlers and ws's receiver
 * are the models.
 */
export type FrameTable<Args extends unknown[] = [], Mark extends string = typeof UNEXPECTED> = {
  readonly [K in FrameKind]: FrameHandler<K, Args> | Mark;
};

/**
 * Calls the table's handler for `frame`. Returns undefined when a handler ran, else the kind's
 * mark (`UNEXPECTED` for a frame of no kind).
 */
export function dispatchFrame<Args extends unknown[], Mark extends string>(
  table: FrameTable<Args, Mark>,
  frame: Frame,
  attachment: Buffer[] | undefined,
  ...args: Args
): Mark | typeof UNEXPECTED | undefined {
  const kind = frame.kind;
  if (kind === undefined) return UNEXPECTED;
  // One handler per kind: the table's type ties each to its body, which a lookup by a kind only
  // known at run time cannot show the compiler.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- tsc needs it: indexing by a union of kinds gives a union of handlers, callable only with an intersection of bodies
  const handler = table[kind] as FrameHandler<FrameKind, Args> | Mark;
  if (typeof handler === 'string') return handler;
  handler(frame[kind] as FrameBody<FrameKind>, frame, attachment, ...args);
  return undefined;
}
