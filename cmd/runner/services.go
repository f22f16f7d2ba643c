package main

import (
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
)

// buildStack assembles what consumes the journal while the session is up:
// the action path behind the guard, and the plugin host.
func buildStack(cfg *config.Config, st *store.Store, log *zap.Logger) (*runner.Stack, error) {
	return runner.NewStack(cfg, store.Bolt(st), log)
}
