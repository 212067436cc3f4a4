//go:build tools

// Package tools pins the Helm client that the chart's tests and
// `make chart-check` run, built from source by hack/helm.sh.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
