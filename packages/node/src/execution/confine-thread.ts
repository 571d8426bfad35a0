/*
 * Preloaded (`--import`) by every worker thread a computation starts (see module-confinement.ts):
 * the computation's directory comes in this module's URL, and the thread's modules are confined
 * to it, the resolve hook registered before the thread's own code is loaded.
 */
import { confineModuleImports, confineModules } from './module-confinement.js';

const computeDir = new URL(import.meta.url).searchParams.get('computeDir');
if (computeDir) {
  confineModules(computeDir);
  confineModuleImports();
}
