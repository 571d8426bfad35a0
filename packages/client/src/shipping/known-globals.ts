/**
 * Names a shipped computation may use without defining them: what every Node worker has, what
 * dispy defines in workers, and the helpers transpilers emit. Anything else a function reads
 * from outside itself would be missing on the node.
 */
// prettier-ignore
const ecmascript = [
  'globalThis', 'Infinity', 'NaN', 'undefined', 'eval', 'isFinite', 'isNaN', 'parseFloat',
  'parseInt', 'decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape',
  'unescape', 'Object', 'Function', 'Array', 'Number', 'Boolean', 'String', 'Symbol', 'BigInt',
  'Date', 'RegExp', 'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError',
  'SyntaxError', 'TypeError', 'URIError', 'Math', 'JSON', 'Reflect', 'Proxy', 'Promise', 'Map',
  'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry', 'ArrayBuffer',
  'SharedArrayBuffer', 'DataView', 'Atomics', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray',
  'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array',
  'BigInt64Array', 'BigUint64Array', 'Intl', 'WebAssembly', 'arguments',
];

// prettier-ignore
const node = [
  'global', 'process', 'Buffer', 'console', 'require', 'module', 'exports', '__filename',
  '__dirname', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate',
  'clearImmediate', 'queueMicrotask', 'structuredClone', 'atob', 'btoa', 'URL', 'URLSearchParams',
  'TextEncoder', 'TextDecoder', 'AbortController', 'AbortSignal', 'EventTarget', 'Event',
  'MessageChannel', 'MessagePort', 'MessageEvent', 'BroadcastChannel', 'Blob', 'File',
  'performance', 'fetch', 'Headers', 'Request', 'Response', 'FormData', 'crypto', 'Crypto',
  'CryptoKey', 'SubtleCrypto', 'DOMException', 'ReadableStream', 'WritableStream',
  'TransformStream', 'TextEncoderStream', 'TextDecoderStream', 'CompressionStream',
  'DecompressionStream',
];

/** Globals dispy defines inside every worker (camelCase and dispy's own spellings). */
// prettier-ignore
export const DISPY_COMPUTATION_GLOBALS = [
  'dispyProvisionalResult', 'dispy_provisional_result', 'dispySendFile', 'dispy_send_file',
  'dispy_node_name', 'dispy_node_ip_addr', 'dispy_job_path', 'dispynode_shutdown',
];

/**
 * Helpers that TypeScript, esbuild (tsx, tsup), Babel and Vite's SSR transform (vitest) emit
 * into functions.
 */
// prettier-ignore
export const TRANSPILER_HELPERS = [
  '__vite_ssr_dynamic_import__', '__name', '__awaiter', '__async', '__publicField', '__defProp', '__defNormalProp',
  '__spreadValues', '__spreadProps', '__assign', '__rest', '__objRest',
];

export const KNOWN_GLOBALS: ReadonlySet<string> = new Set([...ecmascript, ...node, ...DISPY_COMPUTATION_GLOBALS, ...TRANSPILER_HELPERS]);
