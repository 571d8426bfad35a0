import $protobuf from 'protobufjs/minimal.js';
import { describe, expect, it } from 'vitest';
import { dispy } from './schema.js';

describe('the wire schema', () => {
  it('decodes 64-bit fields as numbers, single and repeated, without changing protobufjs for anyone else', () => {
    const job = dispy.Frame.decode(dispy.Frame.encode({ job: { computeId: 'c', jobId: 2 ** 40 + 3 } }).finish()).job!;
    expect(job.jobId).toBe(2 ** 40 + 3);
    const ack = dispy.Frame.decode(dispy.Frame.encode({ jobAck: { jobIds: [1, 2, 2 ** 45] } }).finish()).jobAck!;
    expect(ack.jobIds).toEqual([1, 2, 2 ** 45]);
    // A program that uses protobufjs itself still gets its Long objects.
    expect($protobuf.util.Long).toBeTruthy();
    const reader = $protobuf.Reader.create($protobuf.Writer.create().uint64(7).finish());
    expect(typeof reader.uint64()).toBe('object');
  });
});
