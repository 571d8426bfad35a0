/**
 * The environment of worker processes and programs: the node's, without the variables that carry
 * a secret (DISPY_SECRET, DISPY_NODE_SECRET, DISPY_ADMIN_SECRET, and any other DISPY_* variable
 * whose name says SECRET, KEY or PASSWORD), so that code sent by clients never reads them there.
 */
export function workerEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (/^DISPY_/i.test(name) && /SECRET|KEY|PASS/i.test(name)) continue;
    out[name] = value;
  }
  return out;
}
