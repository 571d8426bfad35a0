/**
 * Test support: the log (stderr) of a dispy process a test started, and waits on it. `who` names
 * the process in failures: `node log did not match /x/: the node exited (1); log: …`.
 */
export function watchLog(child, who) {
  let log = '';
  const listeners = new Set();
  child.stderr.on('data', (chunk) => {
    log += chunk.toString();
    for (const listener of listeners) listener();
  });
  child.stdout.resume();
  const exited = new Promise((resolve) => child.once('exit', () => resolve()));
  return {
    exited,
    get log() {
      return log;
    },
    /** Resolves when the log matches `pattern`; rejects after `timeoutMs` or if the process exits first. */
    waitForLog(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pattern.test(log)) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const fail = (why) => {
          listeners.delete(check);
          clearTimeout(timer);
          reject(new Error(`${who} log did not match ${pattern}: ${why}; log:\n${log}`));
        };
        const timer = setTimeout(() => fail(`not within ${timeoutMs} ms`), timeoutMs);
        listeners.add(check);
        check();
        void exited.then(() =>
          setImmediate(() => listeners.has(check) && fail(`the ${who} exited (${child.exitCode ?? child.signalCode})`)),
        );
      });
    },
  };
}
