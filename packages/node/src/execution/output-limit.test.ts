import { describe, expect, it } from 'vitest';
import { CappedText, capText, formatBytes } from './output-limit.js';
import { fitReply } from './reply-size.js';
import { environHasMark } from './process-marks.js';

describe('output caps', () => {
  it('keeps the first bytes, cut on a character boundary, and names what was dropped', () => {
    const text = new CappedText(10);
    text.push('12345678');
    text.push('é€x'); // 2 + 3 + 1 bytes: only é fits
    text.push(Buffer.from('more'));
    expect(text.text('stdout')).toBe('12345678é…[dispy: 8 bytes of stdout truncated]');
  });

  it('keeps everything without a cap, and short texts as they are', () => {
    const text = new CappedText(0);
    text.push('a'.repeat(5000));
    expect(text.text('stderr')).toHaveLength(5000);
    expect(capText('short', 10, 'exception')).toBe('short');
  });

  it('formats sizes in decimal units', () => {
    expect([formatBytes(999), formatBytes(68_400_000), formatBytes(1_200_000_000)]).toEqual(['999 bytes', '68.4 MB', '1.2 GB']);
  });
});

describe('fitReply', () => {
  const outcome = { jobId: 1, ok: true, stdout: 'out', stderr: '', startTime: 0, endTime: 0, cpuTime: 0 };

  it('leaves a reply that fits as it is', () => {
    const fits = { ...outcome, result: new Uint8Array(100) };
    expect(fitReply(fits, 1024 * 1024)).toBe(fits);
  });

  it('ends a reply too large Terminated, without its result, naming its size and the limit', () => {
    const fitted = fitReply({ ...outcome, result: new Uint8Array(2_100_000) }, 2 * 1024 * 1024);
    expect(fitted.ok).toBe(false);
    expect(fitted.result).toBeUndefined();
    expect(fitted.stdout).toBe('out');
    expect(fitted.exception).toMatch(
      /^dispy: the job's reply is 2\.1 MB \(result 2\.1 MB, stdout 3 bytes, stderr 0 bytes\), over the limit of 2\.0 MB/,
    );
  });
});

describe('process marks', () => {
  const environ = Buffer.from('A=1\0DISPY_JOB_MARK=tok.12.3\0XDISPY_JOB_MARK=tok.99.1\0');

  it('matches whole entries, or their start with prefix', () => {
    expect(environHasMark(environ, { variable: 'DISPY_JOB_MARK', value: 'tok.12.3' })).toBe(true);
    expect(environHasMark(environ, { variable: 'DISPY_JOB_MARK', value: 'tok.12.' })).toBe(false);
    expect(environHasMark(environ, { variable: 'DISPY_JOB_MARK', value: 'tok.12.', prefix: true })).toBe(true);
    expect(environHasMark(environ, { variable: 'DISPY_JOB_MARK', value: 'tok.99.1' })).toBe(false);
  });
});
