package ratelimit

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atenex/gateway/ratelimit/redistest"
)

// lockedBuffer collects log lines from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func newRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	r, err := NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisGCRA(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newRedis(t, RedisOptions{URL: srv.URL(), Limit: Limit{Count: 10, Period: time.Second, Burst: 3}, Timeout: time.Second})
	for i, want := range []int{2, 1, 0} {
		d := r.Allow("k")
		if !d.Allowed || d.Undecided || d.Remaining != want || d.Limit != 3 {
			t.Fatalf("request %d: got %+v, want allowed with %d remaining, limit 3", i, d, want)
		}
	}
	d := r.Allow("k")
	if d.Allowed || d.Undecided || d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond || d.Reset <= 200*time.Millisecond || d.Reset > 300*time.Millisecond {
		t.Errorf("over the burst: got %+v, want refused, RetryAfter in (0, 100ms], Reset in (200ms, 300ms]", d)
	}
	if d := r.Allow("other"); !d.Allowed || d.Remaining != 2 {
		t.Errorf("another key: got %+v, want allowed with 2 remaining", d)
	}
}

// TestRedisShared: two stores (two replicas' clients) on one Redis share
// each key: together they get the limit once, not twice.
func TestRedisShared(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l := Limit{Count: 200, Period: time.Second, Burst: 20}
	stores := []*Redis{
		newRedis(t, RedisOptions{URL: srv.URL(), Limit: l, Timeout: time.Second}),
		newRedis(t, RedisOptions{URL: srv.URL(), Limit: l, Timeout: time.Second}),
	}
	const run = time.Second
	var allowed, undecided atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 4 {
		wg.Go(func() {
			for n := 0; n < 100000 && time.Since(start) < run; n++ {
				d := stores[i%2].Allow("shared")
				if d.Allowed {
					allowed.Add(1)
				}
				if d.Undecided {
					undecided.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start).Seconds()
	want := float64(l.Burst) + float64(l.Count)*took
	if got := float64(allowed.Load()); got < 0.9*want || got > 1.1*want || undecided.Load() != 0 {
		t.Errorf("got %.0f allowed (%d undecided) in %.2f s, want %.0f ± 10 %%", got, undecided.Load(), took, want)
	}
}

// TestRedisOutage: with Redis gone, every decision comes back within the
// timeout, failing open or closed as configured; each failure is counted,
// one is logged; once Redis is back the limit holds again by itself.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	for _, failClosed := range []bool{false, true} {
		t.Run("fail closed "+strconv.FormatBool(failClosed), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			const timeout = 50 * time.Millisecond
			var errs atomic.Int64
			logs := &lockedBuffer{}
			r := newRedis(t, RedisOptions{
				URL: srv.URL(), Limit: Limit{Count: 1, Period: time.Minute, Burst: 2}, Timeout: timeout, FailClosed: failClosed,
				Logger: slog.New(slog.NewTextHandler(logs, nil)), OnError: func() { errs.Add(1) },
			})
			exhaust := func(when string) {
				t.Helper()
				for i, want := range []bool{true, true, false} {
					if d := r.Allow("k"); d.Allowed != want || d.Undecided {
						t.Fatalf("%s, request %d: got %+v, want decided, allowed %v", when, i, d, want)
					}
				}
			}
			exhaust("before the outage")

			srv.Stop(t)
			const n = 50
			for i := range n {
				start := time.Now()
				d := r.Allow("k")
				if took := time.Since(start); took > timeout+100*time.Millisecond {
					t.Errorf("request %d took %v, want at most the %v timeout (and a scheduling margin)", i, took, timeout)
				}
				if !d.Undecided || d.Allowed == failClosed {
					t.Fatalf("Redis down, request %d: got %+v, want undecided, allowed %v", i, d, !failClosed)
				}
			}
			if got := errs.Load(); got != n {
				t.Errorf("got %d errors counted, want %d", got, n)
			}
			if got := logs.count("Rate-limit store failing"); got != 1 {
				t.Errorf("got %d failure log lines for %d failures, want 1 (once per interval)", got, n)
			}

			srv.Restart(t)
			waitDecided(t, r, "k2")
			exhaust("after Redis is back") // a new, empty Redis: the key starts afresh
			if got := logs.count("Rate-limit store answering again"); got != 1 {
				t.Errorf("got %d recovery log lines, want 1", got)
			}
		})
	}
}

// TestRedisPaused: a Redis that accepts but never answers (stopped with
// SIGSTOP) holds no request past the timeout, even many at once.
func TestRedisPaused(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const timeout = 50 * time.Millisecond
	r := newRedis(t, RedisOptions{URL: srv.URL(), Limit: Limit{Count: 100, Period: time.Second, Burst: 100}, Timeout: timeout})
	if d := r.Allow("k"); d.Undecided {
		t.Fatalf("before the pause: got %+v, want decided", d)
	}
	srv.Pause(t)
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for range 50 {
		wg.Go(func() {
			start := time.Now()
			d := r.Allow("k")
			took := time.Since(start)
			for s := slowest.Load(); int64(took) > s && !slowest.CompareAndSwap(s, int64(took)); s = slowest.Load() {
			}
			if !d.Undecided || !d.Allowed {
				t.Errorf("Redis paused: got %+v, want undecided and allowed", d)
			}
		})
	}
	wg.Wait()
	if s := time.Duration(slowest.Load()); s > timeout+100*time.Millisecond {
		t.Errorf("slowest of 50 requests to a paused Redis took %v, want at most the %v timeout (and a margin)", s, timeout)
	}
	srv.Resume(t)
	waitDecided(t, r, "k")
}

// waitDecided polls until r decides again, for at most 5 s: go-redis
// redials a failed server once a second.
func waitDecided(t *testing.T, r *Redis, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Allow(key).Undecided {
		if time.Now().After(deadline) {
			t.Fatal("Redis back, but decisions still undecided after 5 s")
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a readiness guess
	}
}

// BenchmarkRedis is the cost of one decision in Redis: one round trip
// over loopback, the script run included.
func BenchmarkRedis(b *testing.B) {
	srv := redistest.Start(b)
	r := newRedis(b, RedisOptions{URL: srv.URL(), Limit: Limit{Count: 1000000, Period: time.Second, Burst: 1000}, Timeout: time.Second})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if d := r.Allow(strconv.Itoa(i & 1023)); d.Undecided {
				b.Fatal("undecided")
			}
			i++
		}
	})
}

// TestRedisOneRoundTrip: a decision is one command from the client,
// EVALSHA, once the script is loaded (the first call after a restart
// loads it with EVAL).
func TestRedisOneRoundTrip(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newRedis(t, RedisOptions{URL: srv.URL(), Limit: Limit{Count: 10, Period: time.Second, Burst: 100}, Timeout: time.Second})
	r.Allow("warm")
	const n = 100
	before := commandCalls(t, r)
	for i := range n {
		r.Allow("k" + strconv.Itoa(i%3))
	}
	after := commandCalls(t, r)
	inScript := map[string]bool{"time": true, "get": true, "set": true} // what the script calls, counted too
	for cmd, calls := range after {
		if d := calls - before[cmd]; cmd != "info" && cmd != "evalsha" && !inScript[cmd] && d != 0 {
			t.Errorf("%d decisions also ran %s %d times, want evalsha alone", n, cmd, d)
		}
	}
	if after["evalsha"]-before["evalsha"] != n {
		t.Errorf("%d decisions: evalsha ran %d times, want %d", n, after["evalsha"]-before["evalsha"], n)
	}
}

// commandCalls reads INFO commandstats: calls per command.
func commandCalls(t *testing.T, r *Redis) map[string]int64 {
	t.Helper()
	info, err := r.client.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}
