package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "s3cr3t-value-0123456789"
	s := NewSecret(value)
	type holder struct {
		Hash Secret
		Ptr  *Secret
	}
	h := holder{Hash: s, Ptr: &s}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outputs["fmt "+verb] = fmt.Sprintf(verb, s)
		outputs["fmt struct "+verb] = fmt.Sprintf(verb, h)
	}
	outputs["Sprint"] = fmt.Sprint(s, &s)
	outputs["String"] = s.String()
	outputs["GoString"] = s.GoString()
	j, err := json.Marshal(h)
	require.NoError(t, err)
	outputs["json"] = string(j)
	y, err := yaml.Marshal(h)
	require.NoError(t, err)
	outputs["yaml"] = string(y)

	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("secret", zap.Any("any", s), zap.Stringer("stringer", s), zap.Reflect("reflect", h), zap.Any("struct", h))
	outputs["zap json"] = buf.String()

	for name, out := range outputs {
		require.NotContains(t, out, value, name)
		require.NotContains(t, out, "s3cr3t", name)
		if !strings.Contains(name, "%T") {
			require.Contains(t, out, Redacted, name)
		}
	}
	require.Equal(t, value, s.Reveal())
	require.Equal(t, `{"Hash":"[redacted]","Ptr":"[redacted]"}`, string(j))
}

func TestSecretZeroValue(t *testing.T) {
	var s Secret
	require.False(t, s.IsSet())
	require.Equal(t, "not set", s.Describe())
	require.False(t, NewSecret("").IsSet())
}
