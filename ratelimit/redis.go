package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Limiter decides for one request. *Memory and *Redis are Limiters.
type Limiter interface {
	Allow(key string) Decision
}

// gcraScript is gcra in Lua, run inside Redis so that reading and
// writing a key's theoretical arrival time is one atomic step and one
// round trip, however many replicas share the key. Times are in
// microseconds of the Redis server's clock (TIME), so replicas whose
// clocks disagree still agree on every key. The key expires when its
// burst has refilled, as a missing key means a full burst anyway.
//
// KEYS[1] the key; ARGV[1] the interval in µs; ARGV[2] the burst.
// Returns {allowed, remaining, retry after µs, reset µs}.
const gcraScript = `
local t = tonumber(ARGV[1])
local tolerance = t * tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next = tat + t
if next - now > tolerance then
  return {0, 0, math.ceil(next - now - tolerance), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000) + 1)
return {1, math.floor((tolerance - (next - now)) / t), 0, math.ceil(next - now)}
`

// keyPrefix namespaces the gateway's keys in a Redis it may share.
const keyPrefix = "gateway:ratelimit:"

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// URL is the server, redis://[user:password@]host[:port][/db], or
	// rediss:// for TLS.
	URL string
	// Limit is the rate every key gets.
	Limit Limit
	// Timeout bounds one decision, connecting included: past it the
	// request is let through, or refused with FailClosed. Default 50 ms.
	Timeout time.Duration
	// FailClosed refuses requests Redis could not decide on in time,
	// rather than letting them through.
	FailClosed bool
	// Logger hears of failures, once per LogInterval, and of recovery.
	// Nil: no log.
	Logger *slog.Logger
	// LogInterval is the least time between two failure log lines.
	// Default 10 s.
	LogInterval time.Duration
	// OnError is called on every failed decision, to count it. Optional.
	OnError func()
	// Observe receives the time of every decision, failed or not. Optional.
	Observe func(time.Duration)
}

// Redis is a Limiter whose state is in Redis, shared by every replica
// pointed at the same server: a client gets the limit once, however many
// replicas the autoscaler runs. When Redis is down or slow, a decision
// gives up after the timeout, and the client's connections are redialled
// in the background (go-redis probes once a second), so the limit comes
// back by itself with Redis.
type Redis struct {
	client   *redis.Client
	script   *redis.Script
	limit    Limit
	interval string // µs, the script's ARGV[1]
	burst    string
	o        RedisOptions

	failing    atomic.Bool
	failures   atomic.Int64 // since the last log line
	lastLogged atomic.Int64 // UnixNano
}

// NewRedis returns a Redis store. It does not connect: the first request
// does, and a Redis that is down at startup is a Redis that is down.
func NewRedis(o RedisOptions) (*Redis, error) {
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("rate-limit store: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.LogInterval <= 0 {
		o.LogInterval = 10 * time.Second
	}
	// Every wait is bounded by the one timeout, and nothing is retried:
	// a retry would only spend the budget of the request waiting on it.
	opt.DialTimeout = o.Timeout
	opt.ReadTimeout = o.Timeout
	opt.WriteTimeout = o.Timeout
	opt.PoolTimeout = o.Timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &Redis{
		client:   redis.NewClient(opt),
		script:   redis.NewScript(gcraScript),
		limit:    o.Limit,
		interval: strconv.FormatFloat(float64(o.Limit.interval())/float64(time.Microsecond), 'f', -1, 64),
		burst:    strconv.Itoa(o.Limit.Burst),
		o:        o,
	}, nil
}

// Close closes the connections to Redis.
func (r *Redis) Close() error { return r.client.Close() }

// Allow charges one request to key, in one round trip to Redis. If Redis
// does not answer within the timeout, the Decision is Undecided and
// allowed, or refused with FailClosed.
func (r *Redis) Allow(key string) Decision {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), r.o.Timeout)
	d, err := r.take(ctx, key)
	cancel()
	took := time.Since(start)
	if r.o.Observe != nil {
		r.o.Observe(took)
	}
	if err != nil {
		r.failed(err, start)
		return Decision{Undecided: true, Allowed: !r.o.FailClosed, Limit: r.limit.Burst}
	}
	if r.failing.Load() && r.failing.CompareAndSwap(true, false) && r.o.Logger != nil {
		r.o.Logger.Info("Rate-limit store answering again",
			slog.Int64("failures", r.failures.Swap(0)))
	}
	return d
}

// take runs the script.
func (r *Redis) take(ctx context.Context, key string) (Decision, error) {
	res, err := r.script.Run(ctx, r.client, []string{keyPrefix + key}, r.interval, r.burst).Int64Slice()
	if err != nil {
		return Decision{}, err
	}
	if len(res) != 4 {
		return Decision{}, errors.New("rate-limit script: unexpected reply")
	}
	return Decision{
		Allowed:    res[0] == 1,
		Limit:      r.limit.Burst,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		Reset:      time.Duration(res[3]) * time.Microsecond,
	}, nil
}

// failed counts a failure, and logs it if none was logged for an
// interval: an outage under load would otherwise log every request.
func (r *Redis) failed(err error, now time.Time) {
	if r.o.OnError != nil {
		r.o.OnError()
	}
	r.failing.Store(true)
	n := r.failures.Add(1)
	last := r.lastLogged.Load()
	if now.UnixNano()-last < int64(r.o.LogInterval) || !r.lastLogged.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if r.o.Logger != nil {
		policy := "let through"
		if r.o.FailClosed {
			policy = "refused 503"
		}
		r.o.Logger.Warn("Rate-limit store failing; requests are "+policy,
			slog.String("error", err.Error()), slog.Int64("failures", n))
	}
	r.failures.Add(-n)
}
