/*
 * The wire schema as the rest of the code uses it: the code generated from dispy.proto, whose
 * decoders read 64-bit fields (job ids, transfer ids, sizes) as JavaScript numbers, not Long
 * objects (scripts/fix-generated.mjs).
 */
export { dispy } from './generated.js';
