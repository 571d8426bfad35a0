import { UNEXPECTED } from '@dispy/protocol';

/**
 * Frame kinds that never cross an authenticated connection between a SharedJobCluster and
 * dispyscheduler, either way: the handshake's (answered before the frame table), and the ones
 * only a node and its scheduler exchange. Both sides' frame tables spread this.
 */
export const NOT_ON_SHARED_LINK = {
  hello: UNEXPECTED,
  auth: UNEXPECTED,
  authResult: UNEXPECTED,
  nodeCpus: UNEXPECTED,
  fileKept: UNEXPECTED,
  reclaim: UNEXPECTED,
  reclaimReply: UNEXPECTED,
} as const;
