// Two fixes to what pbjs emits:
// - It imports `* as $protobuf from "protobufjs/minimal"`. protobufjs is CommonJS without an
//   exports map, so Node's ESM loader needs the file extension and hands its API over as the
//   default export rather than as a namespace.
// - Its decoders read 64-bit fields (job ids, transfer ids, sizes) as Long objects, and turning a
//   Long into a number with Number() goes through its text: some 5 µs, several times per job. They
//   read them as numbers here (every such value stays below 2^53). protobufjs's own switch for
//   this, `util.Long`, is global: it would change the decoding of a program that uses protobufjs
//   itself.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../src/schema/generated.js', import.meta.url);
const importLine = 'import $protobuf from "protobufjs/minimal.js";';
const helper =
  '\n\n// A 64-bit field as a number (see scripts/fix-generated.mjs).\n' +
  'const $uint64 = (reader) => { const value = reader.uint64(); return typeof value === "number" ? value : value.toNumber(); };';
const decoded = readFileSync(file, 'utf8').replaceAll('reader.uint64()', '$uint64(reader)');
if (/reader\.(u?int64|s?fixed64|sint64)\(\)/.test(decoded)) throw new Error('fix-generated: a 64-bit read is left as a Long');
const text = decoded.replace('import * as $protobuf from "protobufjs/minimal";', importLine + helper);
writeFileSync(file, text);
