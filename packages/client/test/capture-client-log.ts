import { vi } from 'vitest';

/**
 * Collects what the client logs (its logger writes to stderr), still passing it through. The spy
 * is undone by `vi.restoreAllMocks()` in the test's afterEach.
 */
export function captureClientLog(): () => string {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return write(chunk, ...(rest as []));
  }) as typeof process.stderr.write);
  return () => lines.join('');
}
