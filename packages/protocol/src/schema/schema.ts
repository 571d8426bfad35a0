import $protobuf from 'protobufjs/minimal.js';

/*
 * The wire schema as the rest of the code uses it: the generated code (generated.js, from
 * dispy.proto), with 64-bit fields (job ids, transfer ids, sizes) decoded as JavaScript numbers
 * instead of Long objects. Every such value stays below 2^53, and turning a Long into a number
 * (`Number(long)` goes through its text) costs some 5 µs: several times per job, as much as the
 * rest of a tiny job's handling on a node.
 */
$protobuf.util.Long = undefined as unknown as typeof $protobuf.util.Long;
$protobuf.configure();

export { dispy } from './generated.js';
