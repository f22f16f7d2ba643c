package guard_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
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

// A label names the call in the audit log and nothing else: a plugin that
// gives every call a new label still spends its own per-plugin budget,
// and the records keep its source.
func TestLabelDoesNotDodgeThePluginBudget(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, nil)
	g := e.guard(guard.Options{})
	one := 1
	g.SetLimits(e.cfg.Limits, map[string]config.PluginLimits{"outreach": {Send: e.cfg.Limits.Send.Plugin, FirstContactsPerDay: &one}})
	w := g.Wrap(e.wire)
	src := guard.PluginSource("outreach")
	labelled := func(to *pb.Peer, text, label string) action.Call {
		c := send(src, to, text)
		c.Label = label
		return c
	}
	_, p1 := e.user("stranger")
	_, p2 := e.user("stranger")
	_, p3 := e.user("stranger")
	require.Nil(t, w.Execute(e.ctx, labelled(p1, "hello one", "campaign-a")).GetError())
	for _, c := range []action.Call{labelled(p2, "hello two", "campaign-b"), labelled(p3, "hello three", "plugin:other")} {
		r := w.Execute(e.ctx, c)
		require.NotNil(t, r.GetError(), "label %q: the plugin's one first contact a day is spent", c.Label)
		require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.GetError().Code)
	}

	var got []string
	for _, r := range audit(t, g, guard.AuditFilter{Source: src}) {
		got = append(got, r.Label+"/"+r.Outcome)
	}
	require.Equal(t, []string{"campaign-a/ok", "campaign-b/throttled", "plugin:other/throttled"}, got)
	require.Empty(t, audit(t, g, guard.AuditFilter{Plugin: "other"}), "a label never becomes a source")
	recs := audit(t, g, guard.AuditFilter{Label: "campaign-b"})
	require.Len(t, recs, 1)
	require.Equal(t, src, recs[0].Source)
}
