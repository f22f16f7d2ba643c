// Package rules owns the runner's YAML automations: a plugin built on the
// SDK (served by the runner binary as the builtin "rules") that runs
// Home-Assistant-style rules — triggers, conditions, actions, run modes
// and catch-up of triggers missed while the runner was down. The schema
// and its checks live in plugins/rules/spec, shared with core/config,
// which validates the runner config's rules: and hands them to this
// plugin as its config.
//
// Every action is an SDK call to the runner, so the plugin host's
// permissions and the guard apply to rules as to any plugin.
package rules
