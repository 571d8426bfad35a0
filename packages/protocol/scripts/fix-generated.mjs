// pbjs emits `import * as $protobuf from "protobufjs/minimal"`. protobufjs is CommonJS without an
// exports map, so Node's ESM loader needs the file extension and hands its API over as the
// default export rather than as a namespace.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../src/schema/generated.js', import.meta.url);
const text = readFileSync(file, 'utf8').replace(
  'import * as $protobuf from "protobufjs/minimal";',
  'import $protobuf from "protobufjs/minimal.js";',
);
writeFileSync(file, text);
