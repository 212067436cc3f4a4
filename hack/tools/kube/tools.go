//go:build tools

// Package tools pins the Kubernetes control-plane binaries that tests and the
// local platform run: kube-apiserver, kube-controller-manager and kubectl,
// built from source.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
