// Generates src/schema/generated.{js,d.ts} from dispy.proto, only when the schema or this
// generator changed since the last run: `build` and `typecheck` both call it, and `pnpm test`
// builds again, so without the check the code would be generated three times per CI run.
// The stamp is a hash of the inputs (not file times, which checkouts reset).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const at = (relative) => fileURLToPath(new URL(relative, import.meta.url));
const proto = at('../src/schema/dispy.proto');
const js = at('../src/schema/generated.js');
const dts = at('../src/schema/generated.d.ts');
const stamp = at('../src/schema/generated.stamp');

const inputs = [proto, at('./gen.mjs'), at('./fix-generated.mjs'), at('../node_modules/protobufjs-cli/package.json')];
const hash = createHash('sha256');
for (const file of inputs) hash.update(readFileSync(file));
const digest = hash.digest('hex');

const force = process.argv.includes('--force');
if (!force && existsSync(js) && existsSync(dts) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) {
  process.exit(0);
}

const bin = (name) => at(`../node_modules/.bin/${name}`);
const run = (command, args) => execFileSync(command, args, { stdio: 'inherit', cwd: at('..'), shell: process.platform === 'win32' });
run(bin('pbjs'), [
  '-t',
  'static-module',
  '-w',
  'es6',
  '--es6',
  '--force-number',
  '-o',
  'src/schema/generated.js',
  'src/schema/dispy.proto',
]);
run(process.execPath, [at('./fix-generated.mjs')]);
run(bin('pbts'), ['-o', 'src/schema/generated.d.ts', 'src/schema/generated.js']);
writeFileSync(stamp, digest);
console.log('generated src/schema/generated.{js,d.ts} from dispy.proto');
