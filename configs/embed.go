// Package configs holds the ready-made configs that ship inside the runner
// binary: the sandbox demo's config and seed, so `runner sandbox` works
// from any directory, and the examples under examples/.
package configs

import "embed"

// FS holds sandbox.yaml, sandbox-seed.yaml and examples/.
//
//go:embed sandbox.yaml sandbox-seed.yaml examples
var FS embed.FS
