// `pnpm install-into /path/to/project`: builds this checkout, packs its @dispy packages (pnpm pack
// turns their workspace:* dependencies into versions) and installs them into another project with
// npm, as `npm install @dispy/client` will once they are published.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const target = process.argv[2] && path.resolve(process.argv[2]);
if (!target || !existsSync(path.join(target, 'package.json'))) {
  process.stderr.write('usage: pnpm install-into /path/to/project (a directory with a package.json; `npm init -y` makes one)\n');
  process.exit(2);
}
const run = (command, args, cwd) => execFileSync(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
// The project's package.json names the tarballs here: they stay (ignored by git) until the next run.
const packs = path.join(root, '.packs');
rmSync(packs, { recursive: true, force: true });
mkdirSync(packs);
run('pnpm', ['build'], root);
// The client and what it depends on (the same versions, so npm takes the packed ones), and the monitor.
for (const name of ['protocol', 'scheduler', 'recover', 'client', 'monitor']) {
  run('pnpm', ['pack', '--pack-destination', packs], path.join(root, 'packages', name));
}
const tarballs = readdirSync(packs).map((file) => path.join(packs, file));
run('npm', ['install', ...tarballs], target);
