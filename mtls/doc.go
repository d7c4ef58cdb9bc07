// Package mtls owns every TLS connection mirrorkv makes or accepts: the member port (raft
// and member RPCs, both directions, TLS 1.3 by default) and the client port (HTTPS, client
// certificate required). A Source loads the certificate, key, CA bundle and CRL of one port
// from files into an immutable snapshot behind an atomic pointer; new handshakes always use
// the current snapshot, reloads swap it only after the whole new snapshot has been checked,
// and live connections that fail the new policy are closed.
//
// Every refusal carries a documented reason code (package reason); Explain turns any
// handshake error into a diagnosis with advice, and Probe shows what a live port presents.
// Nothing in this package ever falls back to plaintext or to weaker checks.
package mtls
