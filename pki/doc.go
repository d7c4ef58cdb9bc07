// Package pki runs mirrorkv's private, dedicated certificate authority: it creates the CA,
// issues member and client certificates (directly or from a CSR, so that a member's key never
// leaves its host), revokes them and writes the CRL, and inspects and lints certificate files
// before they are deployed. It is pure x509: no network. Time and randomness are injected so
// that tests are deterministic, and every file it writes appears whole (temp file, fsync,
// rename) or not at all.
package pki
