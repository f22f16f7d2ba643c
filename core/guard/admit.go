package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/store"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// kvNamespace is the plugin KV namespace the guard keeps its counters in.
// Plugin names cannot start with "_", so no plugin can reach it.
const kvNamespace = "_guard"

const (
	keyPeerFloodUntil = "peer_flood_until"
	keyPaused         = "paused"
	prefixCount       = "count/"
	prefixContacted   = "contacted/"
	prefixDup         = "dup/"
)

// admit applies the checks that refuse a write outright: the same text to
// too many chats, first contacts, daily joins/invites/imports. Counters are
// only committed when every check passes; in dry-run they are only read.
// It returns nil to let the action through.
func (g *Guard) admit(ctx context.Context, call action.Call, in info, rec AuditRecord, dry bool) *pb.ActionResult {
	now := g.now()
	var commits []func()
	if in.send && in.chatKey != "" && !g.isSelf(in.chat) {
		if err := g.dup.load(ctx, now, g.cfgNow().DuplicateText.Window); err != nil {
			// Checked against what this process remembers; loading is
			// tried again with the next send.
			g.log.Warn("Read the duplicate-text memory", zap.Error(err))
		}
		if retry, why := g.dup.check(call.Source, in, now, g.cfgNow().DuplicateText); why != "" {
			return g.refuse(rec, pb.ErrorCode_ERROR_CODE_THROTTLED, retry, why, OutcomeThrottled)
		}
		commits = append(commits, func() { g.dup.record(ctx, in, now, g.cfgNow().DuplicateText) })
	}
	var firstContact bool
	if in.toUserID != 0 && !g.isSelf(in.chat) {
		stranger, err := g.isStranger(ctx, in.toUserID)
		if err != nil {
			return g.refuse(rec, pb.ErrorCode_ERROR_CODE_INTERNAL, 0, "check whether this is a first contact: "+err.Error(), OutcomeError)
		}
		firstContact = stranger
	}
	var counted []string
	if firstContact {
		counted = append(counted, classFirstContact)
	}
	if in.class != "" && in.class != classSend {
		counted = append(counted, in.class)
	}
	if len(counted) > 0 {
		retry, why, err := g.count(ctx, call.Source, in, counted, now, !dry)
		if err != nil {
			return g.refuse(rec, pb.ErrorCode_ERROR_CODE_INTERNAL, 0, "daily counters: "+err.Error(), OutcomeError)
		}
		if why != "" {
			return g.refuse(rec, pb.ErrorCode_ERROR_CODE_THROTTLED, retry, why, OutcomeThrottled)
		}
	}
	for _, c := range commits {
		c()
	}
	return nil
}

func (g *Guard) isSelf(p *pb.Peer) bool {
	return p.GetKind() == pb.PeerKind_PEER_KIND_USER && p.GetId() != 0 && p.GetId() == g.deps.Self()
}

// isStranger reports whether a user never wrote to the account, is not a
// contact and is not a bot, and the account has not written to them first
// before (within the guard's memory).
func (g *Guard) isStranger(ctx context.Context, userID int64) (bool, error) {
	p, err := g.deps.Store.Peers().Get(ctx, store.PeerRef{Kind: store.PeerUser, ID: userID})
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return false, err
	case p.WroteFirst || p.Contact || p.Bot:
		return false, nil
	}
	_, err = g.kv.Get(ctx, prefixContacted+strconv.FormatInt(userID, 10))
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	}
	return false, err
}

const classFirstContact = "first_contacts"

// dailyLimit is the account-wide and the source's own limit of a class
// (own < 0: none).
func (g *Guard) dailyLimit(source, class string) (account, own int) {
	own = -1
	var pl *config.PluginLimits
	if name, ok := sourcePlugin(source); ok {
		if l, ok := g.pluginLimits()[name]; ok {
			pl = &l
		}
	}
	pick := func(p *int) {
		if p != nil {
			own = *p
		}
	}
	switch class {
	case classFirstContact:
		account = g.cfgNow().FirstContacts.PerDay
		if pl != nil {
			pick(pl.FirstContactsPerDay)
		}
	case classJoin:
		account = g.cfgNow().Daily.Joins
		if pl != nil {
			pick(pl.JoinsPerDay)
		}
	case classInvite:
		account = g.cfgNow().Daily.Invites
		if pl != nil {
			pick(pl.InvitesPerDay)
		}
	case classImport:
		account = g.cfgNow().Daily.ContactImports
		if pl != nil {
			pick(pl.ContactImportsPerDay)
		}
	}
	return account, own
}

var configKey = map[string]string{
	classFirstContact: "limits.first_contacts.per_day",
	classJoin:         "limits.daily.joins",
	classInvite:       "limits.daily.invites",
	classImport:       "limits.daily.contact_imports",
}

// dayLocation is where "a day" starts: the quiet hours' time zone when set.
func (g *Guard) dayLocation() *time.Location {
	if q := g.cfgNow().QuietHours; q != nil && q.Location != nil {
		return q.Location
	}
	return time.Local
}

func dayKey(t time.Time) string { return t.Format("2006-01-02") }

// count checks (and with commit, increments) the daily counters of classes
// in one transaction, and for first contacts the PEER_FLOOD pause.
func (g *Guard) count(ctx context.Context, source string, in info, classes []string, now time.Time, commit bool) (time.Duration, string, error) {
	local := now.In(g.dayLocation())
	day := dayKey(local)
	midnight := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, local.Location())
	var retry time.Duration
	var why string
	err := g.deps.Store.Update(ctx, func(tx store.Txn) error {
		// A backend may run fn again (Redis retries on a conflicting
		// write): start each run from scratch.
		retry, why = 0, ""
		kv := tx.KV(kvNamespace)
		get := func(key string) (int, error) {
			v, err := kv.Get(key)
			if errors.Is(err, store.ErrNotFound) {
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
			return strconv.Atoi(string(v))
		}
		type bump struct {
			key string
			n   int
		}
		var bumps []bump
		for _, class := range classes {
			if class == classFirstContact {
				if v, err := kv.Get(keyPeerFloodUntil); err == nil {
					until, perr := time.Parse(time.RFC3339Nano, string(v))
					if perr == nil && now.Before(until) {
						retry = until.Sub(now)
						why = fmt.Sprintf("first messages to people who never wrote to the account are paused until %s: Telegram answered PEER_FLOOD (limits.first_contacts.peer_flood_pause)",
							until.Format(time.RFC3339))
						return nil
					}
				}
			}
			account, own := g.dailyLimit(source, class)
			keys := []struct {
				key   string
				limit int
				whose string
			}{{prefixCount + day + "/" + class, account, "the account"}}
			if own >= 0 {
				keys = append(keys, struct {
					key   string
					limit int
					whose string
				}{prefixCount + day + "/" + class + "/" + source, own, source})
			}
			for _, k := range keys {
				n, err := get(k.key)
				if err != nil {
					return err
				}
				if n >= k.limit {
					retry = midnight.Sub(now)
					what := strings.ReplaceAll(class, "_", " ")
					if class == classFirstContact {
						what = "first messages to people who never wrote to the account"
					}
					why = fmt.Sprintf("daily limit reached: %s has had %d %s today (limit %d, %s); this is refused, not queued, and may be retried after midnight",
						k.whose, n, what, k.limit, configKey[class])
					return nil
				}
				bumps = append(bumps, bump{k.key, n + 1})
			}
		}
		if !commit {
			return nil
		}
		for _, b := range bumps {
			if err := kv.Set(b.key, []byte(strconv.Itoa(b.n))); err != nil {
				return err
			}
		}
		if slices.Contains(classes, classFirstContact) && in.toUserID != 0 {
			if err := kv.Set(prefixContacted+strconv.FormatInt(in.toUserID, 10), []byte(day)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && commit {
		g.pruneDays(ctx, local)
	}
	return retry, why, err
}

// pruneDays drops counters older than a week, at most once a day.
func (g *Guard) pruneDays(ctx context.Context, today time.Time) {
	g.mu.Lock()
	if g.prunedDay == dayKey(today) {
		g.mu.Unlock()
		return
	}
	g.prunedDay = dayKey(today)
	g.mu.Unlock()
	cutoff := dayKey(today.AddDate(0, 0, -7))
	pairs, err := g.kv.List(ctx, prefixCount, 0)
	if err != nil {
		return
	}
	for _, p := range pairs {
		day, _, _ := strings.Cut(strings.TrimPrefix(p.Key, prefixCount), "/")
		if day < cutoff {
			_ = g.kv.Delete(ctx, p.Key)
		}
	}
}

// peerFlood pauses first contacts after Telegram answered PEER_FLOOD and
// tells the user.
func (g *Guard) peerFlood(it *item) {
	pause := g.cfgNow().FirstContacts.PeerFloodPause
	if pause <= 0 {
		pause = 24 * time.Hour
	}
	until := g.now().Add(pause)
	ctx := context.WithoutCancel(it.ctx)
	if err := g.kv.Set(ctx, keyPeerFloodUntil, []byte(until.Format(time.RFC3339Nano))); err != nil {
		g.log.Error("Could not record the PEER_FLOOD pause", zap.Error(err))
	}
	msg := fmt.Sprintf("Telegram answered PEER_FLOOD to a message from %s to %s: the account is limited in writing to people who never wrote to it. "+
		"tgrunner pauses all first messages to strangers until %s (limits.first_contacts.peer_flood_pause). "+
		"Check @SpamBot in Telegram for the account's status.", it.call.Source, it.in.chatKey, until.Format(time.RFC3339))
	g.log.Warn("PEER_FLOOD: first contacts paused", zap.String("source", it.call.Source), zap.String("chat", it.in.chatKey),
		zap.Time("until", until))
	g.audit.add(AuditRecord{Time: g.now(), Source: SourceRunner, Kind: "first_contacts_pause", Chat: it.in.chatKey,
		Outcome: OutcomeOK, RPCError: "PEER_FLOOD", Reason: msg, CauseSeq: it.call.CauseSeq})
	if g.deps.Notify != nil {
		go g.deps.Notify(context.WithoutCancel(it.ctx), msg)
	}
}

// FirstContactsPausedUntil is when first contacts resume after a
// PEER_FLOOD (zero when they are not paused).
func (g *Guard) FirstContactsPausedUntil(ctx context.Context) time.Time {
	v, err := g.kv.Get(ctx, keyPeerFloodUntil)
	if err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil || !g.now().Before(t) {
		return time.Time{}
	}
	return t
}

// ---- duplicate text ----

// minDupRunes: normalised texts shorter than this ("ok", "thanks!") are
// what people say everywhere; they are exempt unless they carry a link or
// a mention.
const minDupRunes = 12

var (
	urlRe     = regexp.MustCompile(`(?i)\b(?:https?://|tg://|www\.|t\.me/|telegram\.me/)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|me|ru|info|xyz|top|link|app|dev|co)\b\S*`)
	mentionRe = regexp.MustCompile(`@[A-Za-z][A-Za-z0-9_]{3,31}`)
	digitsRe  = regexp.MustCompile(`[0-9]+`)
)

// NormalizeText is the form two texts are compared in for the duplicate
// check: lower case, links replaced by "<url>", @mentions by "<at>", runs
// of digits by "0", and everything but letters, digits and those markers
// dropped, words joined by single spaces. "Buy NOW: https://x.io/a?1 — 50%
// off!!" and "buy now https://y.io/b 70% OFF" are the same text.
func NormalizeText(s string) string {
	s = urlRe.ReplaceAllString(s, " "+markURL+" ")
	s = mentionRe.ReplaceAllString(s, " "+markAt+" ")
	s = strings.ToLower(s)
	s = digitsRe.ReplaceAllString(s, "0")
	var b strings.Builder
	word := func(w string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	inWord := false
	for _, r := range s {
		switch {
		case string(r) == markURL:
			word("<url>")
			inWord = false
		case string(r) == markAt:
			word("<at>")
			inWord = false
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if !inWord && b.Len() > 0 {
				b.WriteByte(' ')
			}
			inWord = true
			b.WriteRune(r)
		default:
			inWord = false
		}
	}
	return b.String()
}

// Private-use runes stand for links and mentions while normalising.
const (
	markURL = "\ue000"
	markAt  = "\ue001"
)

type dupEntry struct {
	chats map[string]time.Time
}

// dupTracker remembers which chats each normalised text went to within the
// window. The memory is kept in the guard's storage too (one dup/ key per
// text), so a restart, a reload or the account's lease moving to another
// runner does not hand a broadcasting plugin a fresh allowance.
type dupTracker struct {
	kv  store.KV // nil: memory only
	log *zap.Logger

	mu      sync.Mutex
	loaded  bool
	entries map[[32]byte]*dupEntry
	swept   time.Time
}

func newDupTracker(kv store.KV, log *zap.Logger) *dupTracker {
	if log == nil {
		log = zap.NewNop()
	}
	return &dupTracker{kv: kv, log: log, entries: map[[32]byte]*dupEntry{}}
}

// load reads the remembered texts from storage once, dropping those older
// than window.
func (d *dupTracker) load(ctx context.Context, now time.Time, window time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded || d.kv == nil {
		return nil
	}
	pairs, err := d.kv.List(ctx, prefixDup, 0)
	if err != nil {
		return fmt.Errorf("list %s: %w", prefixDup, err)
	}
	for _, p := range pairs {
		var key [32]byte
		raw, err := hex.DecodeString(strings.TrimPrefix(p.Key, prefixDup))
		var chats map[string]int64
		if err != nil || len(raw) != len(key) || json.Unmarshal(p.Value, &chats) != nil {
			d.log.Warn("Dropping an unreadable duplicate-text record", zap.String("key", p.Key))
			_ = d.kv.Delete(ctx, p.Key)
			continue
		}
		copy(key[:], raw)
		e := &dupEntry{chats: map[string]time.Time{}}
		for chat, at := range chats {
			if t := time.Unix(0, at); now.Sub(t) < window {
				e.chats[chat] = t
			}
		}
		if len(e.chats) == 0 {
			if err := d.kv.Delete(ctx, p.Key); err != nil {
				return fmt.Errorf("drop expired %s: %w", p.Key, err)
			}
			continue
		}
		// Memory may already know newer sends of this text.
		if cur := d.entries[key]; cur != nil {
			for chat, at := range cur.chats {
				e.chats[chat] = at
			}
		}
		d.entries[key] = e
	}
	d.loaded = true
	return nil
}

// save writes e's chats (or deletes the record when there are none); the
// caller holds d.mu.
func (d *dupTracker) save(ctx context.Context, key [32]byte, e *dupEntry) {
	if d.kv == nil {
		return
	}
	k := prefixDup + hex.EncodeToString(key[:])
	var err error
	if e == nil || len(e.chats) == 0 {
		err = d.kv.Delete(ctx, k)
	} else {
		chats := make(map[string]int64, len(e.chats))
		for chat, at := range e.chats {
			chats[chat] = at.UnixNano()
		}
		var b []byte
		if b, err = json.Marshal(chats); err == nil {
			err = d.kv.Set(ctx, k, b)
		}
	}
	if err != nil {
		d.log.Warn("Persist the duplicate-text memory", zap.Error(err))
	}
}

func dupKey(text string) ([32]byte, bool) {
	n := NormalizeText(text)
	if n == "" {
		return [32]byte{}, false
	}
	if len([]rune(n)) < minDupRunes && !urlRe.MatchString(text) && !mentionRe.MatchString(text) {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(n)), true
}

func allowed(source string, allow []string) bool {
	name := source
	if _, n, ok := strings.Cut(source, ":"); ok {
		name = n
	}
	for _, a := range allow {
		if a == source || a == name {
			return true
		}
	}
	return false
}

// check refuses a text that already went to MaxChats other chats within
// the window. Replies are exempt: answering someone is not a broadcast.
func (d *dupTracker) check(source string, in info, now time.Time, cfg config.DuplicateText) (time.Duration, string) {
	if cfg.MaxChats <= 0 || cfg.Window <= 0 || in.reply || allowed(source, cfg.Allow) {
		return 0, ""
	}
	key, ok := dupKey(in.text)
	if !ok {
		return 0, ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[key]
	if e == nil {
		return 0, ""
	}
	oldest := now
	n := 0
	for chat, at := range e.chats {
		if now.Sub(at) >= cfg.Window {
			delete(e.chats, chat)
			continue
		}
		if chat == in.chatKey {
			return 0, ""
		}
		n++
		if at.Before(oldest) {
			oldest = at
		}
	}
	if n < cfg.MaxChats {
		return 0, ""
	}
	return oldest.Add(cfg.Window).Sub(now), fmt.Sprintf(
		"likely spam: the same text already went to %d chats in the last %s (limits.duplicate_text.max_chats is %d); add %q to limits.duplicate_text.allow to permit",
		n, cfg.Window, cfg.MaxChats, allowName(source))
}

func allowName(source string) string {
	if _, n, ok := strings.Cut(source, ":"); ok {
		return n
	}
	return source
}

func (d *dupTracker) record(ctx context.Context, in info, now time.Time, cfg config.DuplicateText) {
	if cfg.MaxChats <= 0 || cfg.Window <= 0 || in.reply {
		return
	}
	key, ok := dupKey(in.text)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[key]
	if e == nil {
		e = &dupEntry{chats: map[string]time.Time{}}
		d.entries[key] = e
	}
	e.chats[in.chatKey] = now
	for c, at := range e.chats {
		if now.Sub(at) >= cfg.Window {
			delete(e.chats, c)
		}
	}
	d.save(ctx, key, e)
	if now.Sub(d.swept) > cfg.Window {
		d.swept = now
		for k, e := range d.entries {
			n := len(e.chats)
			for c, at := range e.chats {
				if now.Sub(at) >= cfg.Window {
					delete(e.chats, c)
				}
			}
			if len(e.chats) == 0 {
				delete(d.entries, k)
				d.save(ctx, k, nil)
			} else if len(e.chats) != n {
				d.save(ctx, k, e)
			}
		}
	}
}
