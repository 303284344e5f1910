package closedmemo

import "testing"

func TestGetPut(t *testing.T) {
	m := New(100)
	g := m.Generation()
	if _, ok := m.Get("a", g); ok {
		t.Fatal("empty memo answered")
	}
	m.Put("a", g, 1, 10)
	if v, ok := m.Get("a", g); !ok || v.(int) != 1 {
		t.Fatalf("Get = %v, %v; want 1, true", v, ok)
	}
}

// A result read before an Invalidate must never be served after it, even
// if it is Put afterwards (the reader raced with the write).
func TestInvalidateDropsOldGeneration(t *testing.T) {
	m := New(100)
	g := m.Generation()
	m.Put("a", g, 1, 10)
	m.Invalidate()
	if _, ok := m.Get("a", m.Generation()); ok {
		t.Fatal("value survived Invalidate")
	}
	m.Put("b", g, 2, 10) // read before the write committed
	if _, ok := m.Get("b", m.Generation()); ok {
		t.Fatal("value of an old generation was stored")
	}
	if _, ok := m.Get("b", g); ok {
		t.Fatal("old generation answered")
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	m := New(30)
	g := m.Generation()
	m.Put("a", g, 1, 10)
	m.Put("b", g, 2, 10)
	m.Put("c", g, 3, 10)
	m.Get("a", g) // a is now the most recent
	m.Put("d", g, 4, 10)
	if _, ok := m.Get("b", g); ok {
		t.Error("b should have been evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := m.Get(k, g); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	m.Put("big", g, 5, 31) // larger than the whole memo: not kept
	if _, ok := m.Get("big", g); ok {
		t.Error("oversized value kept")
	}
}

func TestNilMemo(t *testing.T) {
	var m *Memo
	m.Put("a", m.Generation(), 1, 1)
	m.Invalidate()
	if _, ok := m.Get("a", 0); ok {
		t.Fatal("nil memo answered")
	}
}
