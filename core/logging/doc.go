// Package logging owns the runner's logger: zap built from the config's
// log section (text or JSON, level, optional file), wrapped in a core that
// masks secrets. The api_hash, the 2FA password, login codes, auth keys and
// phone numbers must never reach a log line; callers register the values
// they hold (Redactor.Register) and phone-number-like text is masked by
// pattern.
package logging
