package builtin

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTable(t *testing.T) {
	names := Names()
	require.True(t, slices.IsSorted(names))
	for _, want := range []string{"admin", "alerts", "autoreply", "forward", "pmguard", "rules", "schedule"} {
		require.Contains(t, names, want)
	}
	for _, n := range names {
		f, ok := Lookup(n)
		require.True(t, ok, n)
		p := f()
		require.Equal(t, n, p.Name(), "the table's name is the plugin's own")
		require.NotSame(t, p, f(), "each lookup builds a fresh plugin")
	}
	_, ok := Lookup("nope")
	require.False(t, ok)

	err := Serve("nope")
	var unknown *UnknownError
	require.True(t, errors.As(err, &unknown))
	require.Contains(t, err.Error(), `"nope" is not a builtin plugin; the builtin plugins are: admin, alerts, autoreply`)
}
