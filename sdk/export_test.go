package sdk

import "context"

// NewTestContext is a Context with no event, for tests of the package.
func NewTestContext(p *Plugin) *Context {
	return &Context{Context: context.Background(), plugin: p, log: p.logger}
}
