/** Log levels, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  level: LogLevel;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A logger that writes `[name] level: message` lines to stderr at or above `level`. */
export function createLogger(name: string, level: LogLevel = 'warn'): Logger {
  const logger: Logger = {
    level,
    debug: (message) => write('debug', message),
    info: (message) => write('info', message),
    warn: (message) => write('warn', message),
    error: (message) => write('error', message),
  };
  function write(at: LogLevel, message: string): void {
    if (LOG_LEVELS.indexOf(at) < LOG_LEVELS.indexOf(logger.level)) return;
    process.stderr.write(`${new Date().toISOString()} [${name}] ${at}: ${message}\n`);
  }
  return logger;
}
