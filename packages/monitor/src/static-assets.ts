import { readFileSync } from 'node:fs';

/** The page's files, shipped in the package's `assets/` folder: served by these paths only. */
const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/monitor.js': { file: 'monitor.js', type: 'text/javascript; charset=utf-8' },
  '/monitor.css': { file: 'monitor.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/** The page's files, read once. */
export class StaticAssets {
  private readonly cache = new Map<string, Buffer>();

  constructor(private readonly root: URL) {}

  /** The file at a request path, or undefined for any other path. */
  get(pathname: string): { body: Buffer; type: string } | undefined {
    const asset = Object.hasOwn(ASSETS, pathname) ? ASSETS[pathname] : undefined;
    if (!asset) return undefined;
    let body = this.cache.get(asset.file);
    if (!body) {
      body = readFileSync(new URL(asset.file, this.root));
      this.cache.set(asset.file, body);
    }
    return { body, type: asset.type };
  }
}
