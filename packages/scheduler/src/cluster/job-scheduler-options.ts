import type net from 'node:net';
import type { ClientTls, dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { EngineOptions } from '../engine/scheduling-engine.js';
import type { ChunkSink, NodeLink } from './node-link.js';
import type { SchedulerJob } from './types.js';

/** What the scheduler needs of discovery (`NodeFinder`). */
export interface Discovery {
  start(): Promise<void>;
  addHost(host: string, port?: number): void;
  enableBroadcast(port?: number): void;
  found(host: string, isFound: boolean, port?: number): void;
  pingNow(): void;
  setActive(active: boolean): void;
  close(): void;
}

export interface JobSchedulerOptions {
  secret: string;
  /**
   * The scheduler is active (see `setActive`) while it holds jobs, by itself: dispyscheduler's.
   * A JobCluster's ledger says so instead (it also counts operations under way).
   */
  activeWhileJobs?: boolean;
  /** TLS toward nodes, from `loadClientTls` (undefined: plain). */
  tls?: ClientTls;
  /** Local address for discovery and node connections (undefined: any). */
  ipAddr?: string;
  /** Local addresses of discovery, one socket each (default: `ipAddr`, else every interface). */
  discoveryAddrs?: string[];
  /** Discover by the IPv4 multicast group instead of broadcast. */
  ipv4Multicast?: boolean;
  /** UDP port of discovery (0: any). */
  port: number;
  /** The port was not chosen by the user: any free port will do if it is taken. */
  portIsDefault: boolean;
  nodePort: number;
  pingInterval?: number;
  clientName: string;
  logger: Logger;
  engine?: EngineOptions;
  /** Where files sent by jobs (dispySendFile) are saved, at their relative paths (confined to it). */
  fileDir: string;
  /** Largest file a job may send back, in bytes (0: no limit); default `DEFAULT_MAX_FILE_SIZE`. */
  maxFileSize?: number;
  /** Most bytes of files one job may send back (0: no limit); default `DEFAULT_MAX_JOB_FILES_SIZE`. */
  maxJobFilesSize?: number;
  /**
   * Takes the files jobs send from each node instead of saving them under `fileDir`
   * (dispyscheduler forwards them to the job's client); `jobOf` finds a job not ended by its uid.
   */
  relayJobFiles?: (link: NodeLink, jobOf: (uid: number) => SchedulerJob | undefined) => ChunkSink;
  /** @internal Discovery other than UDP (tests): called with the handler of discovery replies. */
  discovery?: (onReply: (reply: dispy.DiscoveryReply, address: string) => void) => Discovery;
  /** @internal Makes the socket to a node (tests); default `net.connect`. */
  connect?: (host: string, port: number) => net.Socket;
  /** @internal Resolves a host name (tests); default `dns.lookup`. */
  lookup?: (name: string) => Promise<string[]>;
}

/** Default of `maxFileSize`: 10 MiB, the default of a node's --max-file-size. */
export const DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024;
/** Default of `maxJobFilesSize`: 100 MiB. */
export const DEFAULT_MAX_JOB_FILES_SIZE = 100 * 1024 * 1024;
/** Default of `ComputationSpec.maxRetries`: a reentrant job whose node dies is sent elsewhere at most 3 times. */
export const DEFAULT_MAX_RETRIES = 3;
