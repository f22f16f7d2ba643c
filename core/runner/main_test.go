package runner_test

import (
	"os"
	"testing"

	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// redisSrv is the tests' redis-server (nil when it is not installed: the
// Redis tests then skip).
var redisSrv *redistest.Server

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the runner process it kills.
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	os.Exit(redistest.Main(m, &redisSrv))
}
