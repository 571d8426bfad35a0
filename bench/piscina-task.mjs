// The piscina baseline's task: the same trivial computation the dispy jobs run.
export default (n) => n * 2;
