// Package config embeds the generated manifests (CRDs and webhook
// configurations) so that binaries can install them without the source tree.
package config

import "embed"

// CRDs holds crd/bases/*.yaml.
//
//go:embed crd/bases/*.yaml
var CRDs embed.FS

// Webhooks holds webhook/manifests.yaml.
//
//go:embed webhook/manifests.yaml
var Webhooks embed.FS
