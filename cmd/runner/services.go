package main

import (
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
)

// buildServices assembles what consumes the journal while the session is
// up: the plugin host and the action path behind the guard.
func buildServices(cfg *config.Config, st *store.Store, log *zap.Logger) ([]runner.Service, error) {
	return nil, nil
}
