import { randomBytes } from 'node:crypto';
import { OptionError } from '@dispy/protocol';
import type { CliServer, Logger } from '@dispy/protocol/internal';
import { DEFAULT_MONITOR_PORT, DispyHTTPServer, isLoopbackHost } from '@dispy/monitor';
import { DispyScheduler, type DispySchedulerOptions } from '@dispy/scheduler';

/** dispyscheduler's options: the scheduler's, and its monitor page's (--httpd). */
export interface SchedulerAppOptions extends DispySchedulerOptions {
  /** Serve the monitor page of every computation (@dispy/monitor). */
  httpd?: boolean;
  /** Its port (default 8181). */
  httpdPort?: number;
  /** Its address (default 127.0.0.1; another needs `httpdToken`). */
  httpdHost?: string;
  /** The token the page asks for (given once as ?token=). */
  httpdToken?: string;
}

/** DispyScheduler, with the monitor page of its computations when asked (--httpd). */
export class MonitoredScheduler implements CliServer {
  readonly scheduler: DispyScheduler;
  private readonly httpd?: { host: string; port: number; token: string };
  /** The token was made for this run (none given): the startup line shows it. */
  private madeToken = false;
  private monitor?: DispyHTTPServer;
  private stopWatching?: () => void;

  constructor(options: SchedulerAppOptions) {
    const { httpd, httpdPort, httpdHost, httpdToken, ...schedulerOptions } = options;
    if (!httpd && (httpdPort !== undefined || httpdHost !== undefined || httpdToken !== undefined)) {
      throw new OptionError('dispyscheduler: --httpd-port, --httpd-host and --httpd-token need --httpd');
    }
    if (httpd && httpdHost !== undefined && !isLoopbackHost(httpdHost) && httpdToken === undefined) {
      throw new OptionError(
        `dispyscheduler: --httpd-host ${httpdHost} is reachable from other machines, and the monitor page can cancel jobs and close nodes: ` +
          'give --httpd-token (or DISPY_HTTPD_TOKEN, or --httpd-token-file), or serve it on 127.0.0.1',
      );
    }
    this.scheduler = new DispyScheduler(schedulerOptions);
    // Without a token of the user's, one is made for this run, as Jupyter does: another user of a
    // shared machine can reach the loopback page too, and it can cancel jobs and close nodes.
    if (httpd) {
      this.madeToken = httpdToken === undefined;
      this.httpd = {
        host: httpdHost ?? '127.0.0.1',
        port: httpdPort ?? DEFAULT_MONITOR_PORT,
        token: httpdToken ?? randomBytes(24).toString('base64url'),
      };
    }
  }

  get logger(): Logger {
    return this.scheduler.logger;
  }

  /** Where the monitor page is served, once started with --httpd. */
  get monitorAddress(): Promise<{ host: string; port: number }> | undefined {
    return this.monitor?.start();
  }

  async start(): Promise<void> {
    await this.scheduler.start();
    if (!this.httpd) return;
    try {
      this.monitor = new DispyHTTPServer([], { ...this.httpd, loglevel: this.logger.level });
      const { host, port } = await this.monitor.start();
      this.stopWatching = this.scheduler.watchComputations({
        added: (source) => this.monitor?.addCluster(source),
        removed: (source) => void this.monitor?.delCluster(source),
      });
      const address = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
      this.logger.info(
        this.madeToken
          ? `monitor page at ${address}?token=${this.httpd.token} (a token made for this run; give --httpd-token for one of your own)`
          : `monitor page at ${address} (open it with ?token=)`,
      );
    } catch (error) {
      await this.monitor?.shutdown();
      await this.scheduler.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    this.stopWatching?.();
    await this.monitor?.shutdown();
    await this.scheduler.close();
  }

  status(): ReturnType<DispyScheduler['status']> {
    return this.scheduler.status();
  }
}
