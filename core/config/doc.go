// Package config owns tgrunner's YAML configuration: the schema, strict
// decoding with file:line:col error positions, secret handling (environment
// and file indirection, redaction), defaults that are safe for a normal
// account, and the validation pass that runs after decoding.
//
// Loading happens in three steps, like Caddy's provision/validate split:
//
//  1. decode: YAML is read as a yaml.Node tree and walked section by section,
//     so every problem names its position and key path, and all problems are
//     collected instead of stopping at the first;
//  2. provision: defaults are applied, ${VAR} references and *_file secrets are
//     resolved, relative paths are made absolute, PEM keys are parsed;
//  3. validate: cross-field rules (see Config.Validate) that need the whole,
//     provisioned config.
//
// Sections are registered in one table (see sections in decode.go); a later
// section such as rules:, metrics: or accounts: is one more entry there.
// Until then those keys are reported as unknown.
package config
