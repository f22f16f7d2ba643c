package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

func TestPauseSwitch(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	acct := account(t)
	p := lease.NewPauses(rdb, "tgrtest"+acct)

	_, on, err := p.Get(ctx, acct)
	require.NoError(t, err)
	require.False(t, on)
	require.NoError(t, p.Set(ctx, acct, "first"))
	first, on, err := p.Get(ctx, acct)
	require.NoError(t, err)
	require.True(t, on)
	require.Equal(t, "first", first.Reason)
	require.WithinDuration(t, time.Now(), first.Since, 5*time.Second)

	// A second pause changes the reason, not when it began.
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, p.Set(ctx, acct, "second"))
	second, _, err := p.Get(ctx, acct)
	require.NoError(t, err)
	require.Equal(t, "second", second.Reason)
	require.True(t, second.Since.Equal(first.Since))

	was, err := p.Clear(ctx, acct)
	require.NoError(t, err)
	require.True(t, was)
	was, err = p.Clear(ctx, acct)
	require.NoError(t, err)
	require.False(t, was)

	// An operator's redis-cli SET with a plain reason is a pause too.
	require.NoError(t, rdb.Set(ctx, lease.PauseKey("tgrtest"+acct, acct), "maintenance window", 0).Err())
	st, on, err := p.Get(ctx, acct)
	require.NoError(t, err)
	require.True(t, on)
	require.Equal(t, "maintenance window", st.Reason)
	require.Error(t, p.Set(ctx, "bad{name}", "x"))
}
