// Package pluginv1 is the generated Go code of the tgrunner plugin contract,
// version 1 (tgrunner/plugin/v1/plugin.proto). Regenerate with ../gen.sh.
package pluginv1
