import { OptionError } from '../errors/option-error.js';

/**
 * Parses a size such as `10m`, `512k`, `2G` or `1000` (bytes) into bytes.
 * @throws OptionError when `text` is no such size
 */
export function parseSize(text: string): number {
  const match = /^(\d+)([kmgt]?)b?$/i.exec(text.trim());
  if (!match) throw new OptionError(`size must be a number of bytes with an optional k, m, g or t suffix, got ${JSON.stringify(text)}`);
  const power = ' kmgt'.indexOf(match[2]!.toLowerCase() || ' ');
  return Number(match[1]) * 1024 ** power;
}
