package genmap_test

import (
	"testing"

	"github.com/atenex/gateway/genmap"
)

func TestBoundedByTwoGenerations(t *testing.T) {
	m := genmap.New[int, int](100)
	for i := range 10_000 {
		m.Put(i, i)
		if m.Len() > 200 {
			t.Fatalf("after %d puts: %d entries, want at most 200", i+1, m.Len())
		}
	}
	if _, ok := m.Get(0); ok {
		t.Error("the first key survived 100 rotations")
	}
	if v, ok := m.Get(9_999); !ok || v != 9_999 {
		t.Errorf("the last key: got %d, %v", v, ok)
	}
}

// A key in use survives rotations: a hit in the old generation moves it
// to the current one.
func TestHitMovesForward(t *testing.T) {
	m := genmap.New[string, int](2)
	m.Put("kept", 1)
	m.Put("a", 2)
	m.Put("b", 3) // rotates: kept and a are old
	if m.Rotations() != 1 {
		t.Fatalf("rotations: got %d, want 1", m.Rotations())
	}
	if v, ok := m.Get("kept"); !ok || v != 1 {
		t.Fatalf("kept: got %d, %v", v, ok)
	}
	m.Put("c", 4) // rotates: a is dropped, kept and b are old
	m.Put("d", 5)
	if _, ok := m.Get("a"); ok {
		t.Error("a, never used again, survived two rotations")
	}
	if _, ok := m.Get("kept"); !ok {
		t.Error("kept, used after the first rotation, was dropped at the second")
	}
}

func TestRotateDropsTheOldGeneration(t *testing.T) {
	m := genmap.New[int, int](10)
	m.Put(1, 1)
	m.Rotate()
	if _, ok := m.Get(1); !ok {
		t.Fatal("one rotation dropped a current key")
	}
	m.Rotate() // 1 moved forward on Get, so it is old now
	m.Rotate()
	if m.Len() != 0 {
		t.Errorf("after rotations with no use: %d entries, want 0", m.Len())
	}
}
