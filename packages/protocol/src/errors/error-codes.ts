/**
 * Every error code dispy uses, on the wire (`Error.code` frames between node, scheduler and
 * client) and on thrown `DispyError`s. Both ends import these constants, so a code cannot be
 * spelled one way by the sender and another by the receiver. Codes are stable across releases.
 */
export const ErrorCode = {
  /** A frame broke the protocol: unexpected kind, missing part, out of order. */
  PROTOCOL: 'DISPY_ERR_PROTOCOL',
  /** A frame was larger than allowed for its kind, or its repeated fields too many. */
  FRAME_TOO_LARGE: 'DISPY_ERR_FRAME_TOO_LARGE',
  /** A frame could not be decoded. */
  FRAME_MALFORMED: 'DISPY_ERR_FRAME_MALFORMED',
  /** The peer could not prove the shared secret, or speaks another protocol version. */
  AUTH: 'DISPY_ERR_AUTH',
  /** A job named a computation the node does not have. */
  NO_COMPUTATION: 'DISPY_ERR_NO_COMPUTATION',
  /** The node takes no new jobs now (service hours, 0 CPUs): the job goes elsewhere. */
  NODE_STOPPED: 'DISPY_ERR_NODE_STOPPED',
  /** A file could not be sent or received (missing, refused, over a limit). */
  FILE: 'DISPY_ERR_FILE',
  /** A peer did not answer a request in time, or went away before answering. */
  NO_ANSWER: 'DISPY_ERR_NO_ANSWER',
  /** An option was wrong. */
  OPTION: 'DISPY_ERR_OPTION',
  /** A value cannot be sent. */
  UNSENDABLE: 'DISPY_ERR_UNSENDABLE',
  /** A computation cannot be shipped as it is. */
  COMPUTATION: 'DISPY_ERR_COMPUTATION',
  /** The cluster is closed. */
  CLOSED: 'DISPY_ERR_CLOSED',
  /** The cluster could not start (discovery, ports). */
  START: 'DISPY_ERR_START',
  /** A recover file is missing, is not one, is of a newer format, or cannot be written. */
  RECOVER_FILE: 'DISPY_ERR_RECOVER_FILE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
