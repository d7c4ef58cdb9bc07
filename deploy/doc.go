// Package deploy holds how mirrorkv is packaged: the container image (Dockerfile) and the
// systemd unit (mirrorkv.service), with tests that build the one as its Dockerfile says and
// verify the other. docs/deploy.md walks through a three-member deployment.
package deploy
