package ratelimit

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestGCRA(t *testing.T) {
	l := Limit{Count: 10, Period: time.Second, Burst: 3}
	m := NewMemory(l, 1000)
	var clock int64 = 1e12
	m.now = func() int64 { return clock }
	for i, want := range []bool{true, true, true, false} {
		if d := m.Allow("k"); d.Allowed != want {
			t.Fatalf("request %d: got allowed %v, want %v (%+v)", i, d.Allowed, want, d)
		}
	}
	d := m.Allow("k")
	if d.RetryAfter != 100*time.Millisecond || d.Remaining != 0 || d.Limit != 3 {
		t.Errorf("refusal: got %+v, want RetryAfter 100ms, Remaining 0, Limit 3", d)
	}
	if d := m.Allow("other"); !d.Allowed || d.Remaining != 2 {
		t.Errorf("another key: got %+v, want allowed with 2 remaining", d)
	}
	clock += int64(100 * time.Millisecond)
	if d := m.Allow("k"); !d.Allowed || d.Remaining != 0 {
		t.Errorf("after one interval: got %+v, want allowed, 0 remaining", d)
	}
	clock += int64(time.Second)
	if d := m.Allow("k"); !d.Allowed || d.Remaining != 2 {
		t.Errorf("after the window: got %+v, want a fresh burst", d)
	}
}

// TestRate: over a simulated 10 s of requests every millisecond, one key
// gets Count per second plus the burst.
func TestRate(t *testing.T) {
	l := Limit{Count: 100, Period: time.Second, Burst: 10}
	m := NewMemory(l, 1000)
	var clock int64 = 1e12
	m.now = func() int64 { return clock }
	allowed := 0
	for range 10000 {
		if m.Allow("k").Allowed {
			allowed++
		}
		clock += int64(time.Millisecond)
	}
	if allowed < 1000 || allowed > 1011 {
		t.Errorf("got %d allowed in 10 s, want 1000 + burst 10", allowed)
	}
}

// TestMemoryBound: a million distinct keys (a spoofing flood) leave at most
// maxKeys held and under 64 MiB of heap.
func TestMemoryBound(t *testing.T) {
	const maxKeys = 1 << 18
	const bound = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMemory(Limit{Count: 100, Period: time.Second, Burst: 100}, maxKeys)
	for i := range 1_000_000 {
		m.Allow("2001:db8::" + strconv.Itoa(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := m.Len(); n > maxKeys {
		t.Errorf("got %d keys held, want at most %d", n, maxKeys)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > bound {
		t.Errorf("heap grew %d MiB for 1,000,000 keys, want under %d MiB", grew>>20, bound>>20)
	} else {
		t.Logf("heap grew %.1f MiB, %d keys held", float64(grew)/(1<<20), m.Len())
	}
	runtime.KeepAlive(m)
}

func BenchmarkMemory(b *testing.B) {
	m := NewMemory(Limit{Count: 1000000, Period: time.Second, Burst: 1000}, 1<<18)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Allow(strconv.Itoa(i & 1023))
			i++
		}
	})
}

// TestHighRate: the highest rate config accepts (2^30 a second, under a
// nanosecond a request) is allowed, not a division by zero.
func TestHighRate(t *testing.T) {
	m := NewMemory(Limit{Count: 1 << 30, Period: time.Second, Burst: 1 << 30}, 16)
	for range 1000 {
		if d := m.Allow("k"); !d.Allowed {
			t.Fatalf("got %+v, want allowed", d)
		}
	}
}
