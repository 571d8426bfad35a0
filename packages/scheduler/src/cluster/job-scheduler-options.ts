import type net from 'node:net';
import type { dispy } from '@dispy/protocol';
import type { Logger } from '@dispy/protocol/internal';
import type { EngineOptions } from '../engine/scheduling-engine.js';

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
  /** Local address for discovery and node connections (undefined: any). */
  ipAddr?: string;
  /** UDP port of discovery (0: any). */
  port: number;
  /** The port was not chosen by the user: any free port will do if it is taken. */
  portIsDefault: boolean;
  nodePort: number;
  pingInterval?: number;
  clientName: string;
  logger: Logger;
  engine?: EngineOptions;
  /** Where files sent by jobs (dispySendFile) are saved, at their relative paths. */
  fileDir: string;
  /** @internal Discovery other than UDP (tests): called with the handler of discovery replies. */
  discovery?: (onReply: (reply: dispy.DiscoveryReply, address: string) => void) => Discovery;
  /** @internal Makes the socket to a node (tests); default `net.connect`. */
  connect?: (host: string, port: number) => net.Socket;
  /** @internal Resolves a host name (tests); default `dns.lookup`. */
  lookup?: (name: string) => Promise<string[]>;
}
