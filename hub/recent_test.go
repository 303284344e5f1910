package hub_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/hub"
)

func recentIDs(evs []*peba.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestRecentMatchesReplay(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	h := hub.New(hub.Options{ReplaySize: 3, ReplayAge: time.Minute, Now: c.now})
	eq(t, recentIDs(h.Recent(entitled)))
	for i := range 4 {
		d := peba.DomainCommunity
		if i == 2 {
			d = peba.DomainPrivate
		}
		h.Publish([]peba.Event{ev(fmt.Sprint(i), d)})
		c.add(20 * time.Second)
	}
	// The ring holds 1, 2, 3 (size 3); 1 is 60 s old and still inside the
	// age, published at t0+20 s, now t0+80 s: 60 s is not before the cutoff.
	eq(t, recentIDs(h.Recent(entitled)), "1", "2", "3")
	eq(t, recentIDs(h.Recent(anon)), "1", "3")
	eq(t, recentIDs(h.Recent(hub.Filter{})))
	c.add(time.Second)
	eq(t, recentIDs(h.Recent(entitled)), "2", "3")
	if n := h.Buffered(entitled); n != 3 {
		t.Errorf("Buffered(entitled) = %d, want 3 (expired entries count)", n)
	}
	if n := h.Buffered(anon); n != 2 {
		t.Errorf("Buffered(anon) = %d, want 2", n)
	}
	s := h.Subscribe(entitled)
	defer s.Close()
	eq(t, ids(s), recentIDs(h.Recent(entitled))...)
}
