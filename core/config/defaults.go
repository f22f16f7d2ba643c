package config

import (
	"strconv"
	"time"
)

// Defaults, chosen to be safe for a normal user account. docs/config.md
// explains each one.
const (
	DefaultStorageDir = "./data"
	// DefaultLeaseTTL is storage.lease_ttl's default.
	DefaultLeaseTTL = 15 * time.Second
	DefaultTestDC   = 2
)

// Default returns a Config with every default applied and no credentials.
func Default() *Config {
	return &Config{
		Version: CurrentVersion,
		Server:  Server{Type: ServerProduction},
		Storage: Storage{Dir: DefaultStorageDir, LeaseTTL: DefaultLeaseTTL},
		Log: Log{
			Level:  LevelInfo,
			Format: FormatText,
			Redact: Redact{PhoneNumbers: RedactPhonesPlus, MinDigits: 9},
		},
		Limits: Limits{
			Send: SendLimits{
				// 1 message a second with a burst of 3 per chat, 20 a minute
				// in groups: what Telegram tolerates from a person typing fast.
				PerChat:  RateLimit{Rate: Rate{1, time.Second}, Burst: 3},
				PerGroup: RateLimit{Rate: Rate{20, time.Minute}, Burst: 3},
				Global:   RateLimit{Rate: Rate{30, time.Minute}, Burst: 5},
				Plugin:   RateLimit{Rate: Rate{20, time.Minute}, Burst: 5},
			},
			FirstContacts: FirstContacts{PerDay: 5, PeerFloodPause: 24 * time.Hour},
			DuplicateText: DuplicateText{MaxChats: 5, Window: time.Hour},
			Daily:         DailyLimits{Joins: 5, Invites: 5, ContactImports: 5},
			// contrib floodwait.Waiter's own defaults.
			FloodWait:      FloodWait{MaxWait: time.Minute, MaxRetries: 5, OnExceed: OnExceedRetryLater},
			RPC:            RPCLimit{Interval: 200 * time.Millisecond, Burst: 5},
			PersistWaiting: true,
		},
	}
}

// defaultPlugin returns a plugin with every default applied, given the
// account-wide per-plugin send budget.
func defaultPlugin(send RateLimit) Plugin {
	return Plugin{
		Filter:   Filter{Direction: DirectionAny},
		Timeouts: PluginTimeouts{Start: 10 * time.Second, Event: 30 * time.Second},
		Queue:    PluginQueue{Size: 1024, Overflow: OverflowBlock},
		Restart: PluginRestart{
			BackoffMin: time.Second,
			BackoffMax: 2 * time.Minute,
			MaxCrashes: 5,
			Window:     10 * time.Minute,
		},
		Limits: PluginLimits{Send: send},
	}
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
