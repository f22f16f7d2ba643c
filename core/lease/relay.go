package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Relay carries control requests between runners that share Redis: a
// runner asked about an account another runner holds forwards the request
// to that runner and hands back its answer, so `runner plugins restart
// --account A` works from any machine. A request goes out on the holder's
// channel (PUBLISH, so a holder that is not listening is known at once);
// the answer comes back on a list only the asker waits on (BLPOP), so it
// cannot be missed.
type Relay struct {
	rdb    redis.UniversalClient
	prefix string
	holder string
}

// RelayRequest is a control request, as HTTP would carry it.
type RelayRequest struct {
	ID     string `json:"id"`
	From   string `json:"from"`
	Method string `json:"method"`
	// Path is the request's path and query.
	Path string `json:"path"`
	Body []byte `json:"body,omitempty"`
}

// RelayResponse is the holder's answer.
type RelayResponse struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// ErrNotListening is returned when no runner listens as the holder asked
// for: it died, or is still starting.
var ErrNotListening = errors.New("that runner does not listen for relayed requests")

// replyTTL bounds how long an answer nobody reads stays in Redis.
const replyTTL = time.Minute

// NewRelay returns the relay of runner holder, with keys under prefix
// ("" for the default).
func NewRelay(rdb redis.UniversalClient, prefix, holder string) *Relay {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Relay{rdb: rdb, prefix: prefix, holder: holder}
}

func (r *Relay) channel(holder string) string { return r.prefix + ":relay:" + holder }
func (r *Relay) replyKey(id string) string    { return r.prefix + ":relay:reply:" + id }

// Forward sends req to runner holder and waits for its answer until ctx
// ends or wait passes.
func (r *Relay) Forward(ctx context.Context, holder string, req RelayRequest, wait time.Duration) (RelayResponse, error) {
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return RelayResponse{}, err
	}
	req.ID, req.From = hex.EncodeToString(id[:]), r.holder
	b, err := json.Marshal(req)
	if err != nil {
		return RelayResponse{}, err
	}
	n, err := r.rdb.Publish(ctx, r.channel(holder), b).Result()
	if err != nil {
		return RelayResponse{}, fmt.Errorf("relay to runner %s: %w", holder, err)
	}
	if n == 0 {
		return RelayResponse{}, fmt.Errorf("relay to runner %s: %w", holder, ErrNotListening)
	}
	res, err := r.rdb.BLPop(ctx, wait, r.replyKey(req.ID)).Result()
	if errors.Is(err, redis.Nil) {
		return RelayResponse{}, fmt.Errorf("relay to runner %s: no answer within %s", holder, wait)
	}
	if err != nil {
		return RelayResponse{}, fmt.Errorf("relay to runner %s: %w", holder, err)
	}
	var resp RelayResponse
	if err := json.Unmarshal([]byte(res[1]), &resp); err != nil {
		return RelayResponse{}, fmt.Errorf("relay to runner %s: bad answer: %w", holder, err)
	}
	return resp, nil
}

// Serve answers the requests relayed to this runner with handle until ctx
// ends. It returns once it listens and serves in the background; go-redis
// re-subscribes after a lost connection.
func (r *Relay) Serve(ctx context.Context, handle func(context.Context, RelayRequest) RelayResponse) error {
	sub := r.rdb.Subscribe(ctx, r.channel(r.holder))
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return fmt.Errorf("listen for relayed requests: %w", err)
	}
	go func() {
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				var req RelayRequest
				if err := json.Unmarshal([]byte(msg.Payload), &req); err != nil || req.ID == "" {
					continue
				}
				go r.answer(ctx, req, handle)
			}
		}
	}()
	return nil
}

func (r *Relay) answer(ctx context.Context, req RelayRequest, handle func(context.Context, RelayRequest) RelayResponse) {
	resp := handle(ctx, req)
	b, err := json.Marshal(resp)
	if err != nil {
		return
	}
	key := r.replyKey(req.ID)
	pipe := r.rdb.TxPipeline()
	pipe.RPush(ctx, key, b)
	pipe.Expire(ctx, key, replyTTL)
	_, _ = pipe.Exec(ctx)
}
