package guard_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/store"
)

// The label is stored with the record and selects records by itself,
// apart from the source it sits next to.
func TestAuditLabelStoredAndFiltered(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir()+"/data", store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := []guard.AuditRecord{
		{Time: at, Source: "plugin:rules", Label: "greet", Kind: "send", Chat: "user:1", Outcome: guard.OutcomeOK},
		{Time: at.Add(time.Second), Source: "plugin:rules", Label: "away", Kind: "send", Chat: "user:1", Outcome: guard.OutcomeOK},
		{Time: at.Add(2 * time.Second), Source: "plugin:echo", Kind: "send", Chat: "user:1", Outcome: guard.OutcomeOK},
		{Time: at.Add(3 * time.Second), Source: "plugin:echo", Label: "greet", Kind: "send", Chat: "user:2", Outcome: guard.OutcomeOK},
	}
	for _, r := range recs {
		require.NoError(t, guard.Append(ctx, st, r))
	}
	tests := []struct {
		name   string
		filter guard.AuditFilter
		want   []guard.AuditRecord
	}{
		{"label", guard.AuditFilter{Label: "greet"}, []guard.AuditRecord{recs[0], recs[3]}},
		{"label and plugin", guard.AuditFilter{Label: "greet", Plugin: "rules"}, []guard.AuditRecord{recs[0]}},
		{"label and chat", guard.AuditFilter{Label: "greet", Chat: "user:2"}, []guard.AuditRecord{recs[3]}},
		{"plugin ignores labels", guard.AuditFilter{Plugin: "rules"}, []guard.AuditRecord{recs[0], recs[1]}},
		{"unknown label", guard.AuditFilter{Label: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := guard.ReadAudit(ctx, st, tt.filter)
			require.NoError(t, err)
			for i := range got {
				got[i].Time = got[i].Time.UTC()
			}
			require.Equal(t, tt.want, got)
		})
	}
}
