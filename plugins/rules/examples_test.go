package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// Every configs/examples/rules-*.yaml loads without problems, and its
// rules are accepted by the plugin the way the runner hands them over.
func TestRuleExamples(t *testing.T) {
	files, err := filepath.Glob("../../configs/examples/rules-*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			cfg, err := config.Load(t.Context(), file, config.LoadOptions{LookupEnv: config.MapEnv(nil)})
			require.NoError(t, err)
			require.NotEmpty(t, cfg.Rules)
			p, ok := config.RulesPlugin(cfg)
			require.True(t, ok)
			raw, err := p.RawConfig()
			require.NoError(t, err)
			var v map[string]any
			require.NoError(t, p.Config.Decode(&v))
			_, err = sdktest.Start(t, newEngine(nil).p, sdktest.WithConfig(v), sdktest.Quiet())
			require.NoError(t, err, "the plugin refuses the config:\n%s", raw)
		})
	}
	_ = os.Stdout
}

func TestAwayExample(t *testing.T) {
	cfg, err := config.Load(t.Context(), "../../configs/examples/rules-away.yaml", config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	p, _ := config.RulesPlugin(cfg)
	var v map[string]any
	require.NoError(t, p.Config.Decode(&v))
	// Monday 09:00 UTC is 10:00 in Berlin: office hours, no answer.
	f := &fixture{clk: sdktest.NewClock(monday9)}
	f.e = newEngine(f.clk)
	f.h = sdktest.New(t, f.e.p, sdktest.WithClock(f.clk), sdktest.WithConfig(v), sdktest.Quiet())
	require.Empty(t, sends(f.h.Handle(sdktest.PrivateText("hi"))))
	f.clk.Set(monday9.Add(10 * 3600e9)) // 20:00 in Berlin
	got := sends(f.h.Handle(sdktest.PrivateText("hi")))
	require.Len(t, got, 1)
	require.Contains(t, got[0], "Hi Alice, I'm away")
	require.Contains(t, got[0], "Mon 20:00")
	require.Empty(t, sends(f.h.Handle(sdktest.PrivateText("hi again"))), "once per 4 hours per sender")
	require.Empty(t, sends(f.h.Handle(sdktest.GroupText("hi"))), "private chats only")
}
