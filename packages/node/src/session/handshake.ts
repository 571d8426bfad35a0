// The node's side of the handshake is the protocol's (dispyscheduler answers its clients with it too).
export { ServerHandshake as Handshake, type ServerHandshakeOptions as HandshakeOptions } from '@dispy/protocol';
