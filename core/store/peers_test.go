package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPeerRefParse(t *testing.T) {
	tests := []struct {
		in      string
		want    PeerRef
		wantErr string
	}{
		{"user:123", PeerRef{PeerUser, 123}, ""},
		{"chat:45", PeerRef{PeerChat, 45}, ""},
		{"channel:678", PeerRef{PeerChannel, 678}, ""},
		{"channel:9223372036854775807", PeerRef{PeerChannel, 9223372036854775807}, ""},
		{"user", PeerRef{}, "want kind:id"},
		{"group:1", PeerRef{}, `unknown kind "group"`},
		{"User:1", PeerRef{}, "unknown kind"},
		{"user:", PeerRef{}, "positive decimal"},
		{"user:0", PeerRef{}, "positive decimal"},
		{"user:-5", PeerRef{}, "positive decimal"},
		{"user:+5", PeerRef{}, "positive decimal"},
		{"user:007", PeerRef{}, "positive decimal"},
		{"user:1 ", PeerRef{}, "positive decimal"},
		{"user:9223372036854775808", PeerRef{}, "positive decimal"},
		{"user:1:2", PeerRef{}, "positive decimal"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePeerRef(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Contains(t, err.Error(), tt.in)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.in, got.String())
		})
	}
}

func FuzzParsePeerRef(f *testing.F) {
	for _, s := range []string{"user:1", "chat:45", "channel:678", "user:0", "x:1", ":", "channel:9223372036854775807", "user:-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePeerRef(s)
		if err != nil {
			return
		}
		if !r.Valid() {
			t.Fatalf("ParsePeerRef(%q) accepted invalid %#v", s, r)
		}
		if r.String() != s {
			t.Fatalf("ParsePeerRef(%q).String() = %q: the string form must round-trip", s, r.String())
		}
		var back PeerRef
		if err := back.UnmarshalText([]byte(r.String())); err != nil || back != r {
			t.Fatalf("text round-trip of %q: %v %#v", s, err, back)
		}
	})
}

func TestPeerStore(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	ps := s.Peers()
	alice := Peer{Ref: PeerRef{PeerUser, 10}, AccessHash: 111, FirstName: "Alice", Username: "Alice_W", Phone: "+1 (555) 0100", Contact: true}
	news := Peer{Ref: PeerRef{PeerChannel, 10}, AccessHash: 222, Title: "News", Username: "newsroom", Broadcast: true}
	group := Peer{Ref: PeerRef{PeerChat, 30}, Title: "Friends"}
	require.NoError(t, ps.Put(ctx, alice, news, group))
	require.Error(t, ps.Put(ctx, Peer{Ref: PeerRef{Kind: 9, ID: 1}}))
	require.NoError(t, ps.MarkWroteFirst(ctx, alice.Ref))
	require.NoError(t, s.Close())

	s = openTest(t, dir)
	ps = s.Peers()
	lookups := []struct {
		name    string
		get     func() (Peer, error)
		wantRef PeerRef
	}{
		{"by ref", func() (Peer, error) { return ps.Get(ctx, news.Ref) }, news.Ref},
		{"username any case", func() (Peer, error) { return ps.ByUsername(ctx, "alice_w") }, alice.Ref},
		{"username with @", func() (Peer, error) { return ps.ByUsername(ctx, "@NEWSROOM") }, news.Ref},
		{"phone other format", func() (Peer, error) { return ps.ByPhone(ctx, "15550100") }, alice.Ref},
	}
	for _, l := range lookups {
		p, err := l.get()
		require.NoError(t, err, l.name)
		require.Equal(t, l.wantRef, p.Ref, l.name)
	}
	p, err := ps.Get(ctx, alice.Ref)
	require.NoError(t, err)
	require.True(t, p.WroteFirst)
	require.True(t, p.Contact)
	require.Equal(t, int64(111), p.AccessHash)

	byID, err := ps.ByID(ctx, 10)
	require.NoError(t, err)
	require.Len(t, byID, 2, "user 10 and channel 10 are different peers")

	// A min entity (no access hash) keeps the known hash; WroteFirst is sticky;
	// a username change moves the index.
	require.NoError(t, ps.Put(ctx, Peer{Ref: alice.Ref, FirstName: "Alice", Username: "alice_new"}))
	p, err = ps.Get(ctx, alice.Ref)
	require.NoError(t, err)
	require.Equal(t, int64(111), p.AccessHash)
	require.True(t, p.WroteFirst)
	_, err = ps.ByUsername(ctx, "alice_w")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = ps.ByPhone(ctx, "15550100")
	require.ErrorIs(t, err, ErrNotFound, "phone dropped when no longer known")
	p, err = ps.ByUsername(ctx, "ALICE_NEW")
	require.NoError(t, err)
	require.Equal(t, alice.Ref, p.Ref)

	// A username taken over by another peer points at the new owner.
	require.NoError(t, ps.Put(ctx, Peer{Ref: PeerRef{PeerUser, 11}, Username: "newsroom"}))
	p, err = ps.ByUsername(ctx, "newsroom")
	require.NoError(t, err)
	require.Equal(t, PeerRef{PeerUser, 11}, p.Ref)

	require.NoError(t, ps.Delete(ctx, alice.Ref))
	_, err = ps.Get(ctx, alice.Ref)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = ps.ByUsername(ctx, "alice_new")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, ps.MarkWroteFirst(ctx, alice.Ref), ErrNotFound)
}
