package logging

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tgrunner/tgrunner/core/config"
)

// Masks written in place of what was removed.
const (
	SecretMask = "[redacted]"
	PhoneMask  = "[phone]"
)

// A "+" then 7 to 15 digits, optionally grouped by spaces, dashes, dots or
// parentheses: the international format people and Telegram write.
var plusPhoneRe = regexp.MustCompile(`\+[0-9](?:[ \-.()]{0,2}[0-9]){6,14}`)
var digitRunRe = regexp.MustCompile(`[0-9]+`)

// Redactor masks registered secret values and phone-number-like text. It
// is safe for concurrent use; values registered later apply to every
// logger sharing it from then on.
type Redactor struct {
	mu       sync.Mutex
	values   map[string]struct{}
	replacer atomic.Pointer[strings.Replacer]

	phones    string // config.RedactPhones*
	minDigits int
}

// NewRedactor returns a redactor with the config's phone policy.
func NewRedactor(policy config.Redact) *Redactor {
	r := &Redactor{values: map[string]struct{}{}, phones: policy.PhoneNumbers, minDigits: policy.MinDigits}
	if r.phones == "" {
		r.phones = config.RedactPhonesPlus
	}
	if r.minDigits == 0 {
		r.minDigits = 9
	}
	return r
}

// Register adds secret values to mask, such as a login code once it is
// typed or an auth key once it exists. Empty values are ignored.
func (r *Redactor) Register(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	added := false
	for _, v := range values {
		if v == "" {
			continue
		}
		if _, ok := r.values[v]; !ok {
			r.values[v] = struct{}{}
			added = true
		}
	}
	if !added {
		return
	}
	// Longest first, so a secret that contains another is masked whole.
	all := make([]string, 0, len(r.values))
	for v := range r.values {
		all = append(all, v)
	}
	sort.Slice(all, func(i, j int) bool {
		if len(all[i]) != len(all[j]) {
			return len(all[i]) > len(all[j])
		}
		return all[i] < all[j]
	})
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, SecretMask)
	}
	r.replacer.Store(strings.NewReplacer(pairs...))
}

// Redact returns s with every registered secret and, per the policy,
// phone-number-like text masked.
func (r *Redactor) Redact(s string) string {
	if s == "" {
		return s
	}
	if rep := r.replacer.Load(); rep != nil {
		s = rep.Replace(s)
	}
	switch r.phones {
	case config.RedactPhonesPlus:
		if strings.IndexByte(s, '+') >= 0 {
			s = plusPhoneRe.ReplaceAllString(s, PhoneMask)
		}
	case config.RedactPhonesDigits:
		if strings.IndexByte(s, '+') >= 0 {
			s = plusPhoneRe.ReplaceAllString(s, PhoneMask)
		}
		s = digitRunRe.ReplaceAllStringFunc(s, func(run string) string {
			if len(run) >= r.minDigits && len(run) <= 15 {
				return PhoneMask
			}
			return run
		})
	}
	return s
}

// redactValue masks strings anywhere inside a value produced by zap's map
// encoder or by JSON decoding.
func (r *Redactor) redactValue(v any) any {
	switch x := v.(type) {
	case nil, bool, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return x
	case string:
		return r.Redact(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[r.Redact(k)] = r.redactValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.redactValue(e)
		}
		return out
	default:
		// Anything else (structs, typed maps, errors) goes through JSON, as
		// the JSON encoder would have written it.
		b, err := json.Marshal(x)
		if err != nil {
			return r.Redact(err.Error())
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return r.Redact(string(b))
		}
		if s, ok := generic.(string); ok {
			return r.Redact(s)
		}
		return r.redactValue(generic)
	}
}
