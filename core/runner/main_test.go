package runner_test

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the runner process it kills.
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}
