// AvailInfo is defined once, beside the wire schema it mirrors; the scheduler re-exports it.
export { toAvailInfo, type AvailInfo } from '@dispy/protocol';
