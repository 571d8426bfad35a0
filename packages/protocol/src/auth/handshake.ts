import { mac } from './hmac.js';

/*
 * Mutual challenge–response over a fresh TCP (or TLS) connection:
 *   node   -> client  Hello { nonceN }
 *   client -> node    Auth  { nonceC, mac(secret, "dispy-client", nonceN, nonceC) }
 *   node   -> client  AuthResult { ok, mac(secret, "dispy-node", nonceC, nonceN) }
 * The secret never crosses the wire; both nonces are fresh per connection, so a recorded
 * handshake replayed later fails; the labels keep one side's proof from serving as the other's.
 */

/** What the client sends to prove the secret to the node. */
export function clientProof(secret: string, nodeNonce: Uint8Array, clientNonce: Uint8Array): Buffer {
  return mac(secret, 'dispy-client', nodeNonce, clientNonce);
}

/** What the node sends back to prove the secret to the client. */
export function nodeProof(secret: string, clientNonce: Uint8Array, nodeNonce: Uint8Array): Buffer {
  return mac(secret, 'dispy-node', clientNonce, nodeNonce);
}
