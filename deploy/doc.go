// Package deploy holds the Kubernetes manifests that run the gateway, under
// kubernetes/ (apply them with kubectl apply -k deploy/kubernetes). It has
// no Go code: its test parses every manifest and checks that they agree
// with each other and with the gateway's configuration (package config), so
// that a port, a probe or a shutdown timing cannot drift out of step with
// the binary.
package deploy
