package pluginhost

import (
	"context"
	"io"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// pipeStream is an in-process Session stream: the same host pipeline
// (feed, filter, queue, window, acks) with a goroutine instead of a plugin
// process at the other end. It is the floor the benchmarks compare with.
type pipeStream struct {
	toPlugin   chan *pluginv1.HostMessage
	fromPlugin chan *pluginv1.PluginMessage
	done       chan struct{}
}

func (p *pipeStream) Send(m *pluginv1.HostMessage) error {
	select {
	case p.toPlugin <- m:
		return nil
	case <-p.done:
		return io.EOF
	}
}

func (p *pipeStream) Recv() (*pluginv1.PluginMessage, error) {
	select {
	case m := <-p.fromPlugin:
		return m, nil
	case <-p.done:
		return nil, io.EOF
	}
}

// RunInProcess delivers feed's events through the host's pipeline to handle,
// called in order in one goroutine that batches acks the way the plugins
// do. stop ends it.
func RunInProcess(feed Feed, spec Spec, handle func(*pluginv1.Event)) (stop func(), err error) {
	spec = spec.WithDefaults()
	h := &Host{opts: Options{Logger: zap.NewNop()}, log: zap.NewNop()}
	in := newInstance(h, spec)
	in.feed = feed
	in.acker = newAcker(feed, in.log)
	ctx, cancel := context.WithCancel(context.Background())
	in.hostCtx = ctx
	go in.acker.run(ctx)
	m, err := newMatcher(spec.Filter, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	pipe := &pipeStream{toPlugin: make(chan *pluginv1.HostMessage, spec.Window), fromPlugin: make(chan *pluginv1.PluginMessage, 64), done: make(chan struct{})}
	go func() {
		var batch []uint64
		for {
			select {
			case <-pipe.done:
				return
			case msg := <-pipe.toPlugin:
				ev := msg.GetEvent()
				if ev == nil {
					continue
				}
				handle(ev)
				batch = append(batch, ev.GetSeq())
				if len(pipe.toPlugin) == 0 {
					select {
					case pipe.fromPlugin <- &pluginv1.PluginMessage{Msg: &pluginv1.PluginMessage_Ack{Ack: &pluginv1.Ack{Seqs: batch}}}:
					case <-pipe.done:
						return
					}
					batch = nil
				}
			}
		}
	}()
	r := newRun(in, pipe, m, nil)
	r.start(0)
	return func() {
		close(pipe.done)
		r.fail(context.Canceled, false)
		r.close()
		cancel()
	}, nil
}
