package livefeed

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/hub"
)

func cached(c *encodedCache) int {
	n := 0
	c.m.Range(func(any, any) bool { n++; return true })
	return n
}

// Payloads are encoded only for audiences that have viewers: with nobody
// watching the feed costs no encoding (the broadcaster only remembers the
// events for a later replay), and anonymous viewers alone cost no full
// payloads.
func TestEncodesOnlyForAudiencesWithViewers(t *testing.T) {
	h := hub.New(hub.Options{})
	s := New(Options{Hub: h, Heartbeat: time.Hour})
	defer s.Close()
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ev := func(id string) peba.Event {
		return peba.Event{ID: id, Domain: peba.DomainCommunity, ReceivedTime: time.Now(), URL: "/x"}
	}
	h.Publish([]peba.Event{ev("unwatched")})
	resp, err := http.Get(srv.URL + "/api/v1/events/stream") // anonymous
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h.Publish([]peba.Event{ev("watched")})
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"watched"`) {
			break
		}
	}
	if n := cached(s.full); n != 0 {
		t.Errorf("%d full payloads encoded with only an anonymous viewer", n)
	}
	// The replay ("unwatched") and the live event, for the SSE viewer.
	if n := cached(s.anon); n != 2 {
		t.Errorf("%d anonymous payloads encoded, want 2", n)
	}
	// The Socket.IO broadcaster, which has no viewers, encoded nothing:
	// once the hub closes it handles what is pending and stops.
	h.Close()
	<-s.stopped
	if n := cached(s.full); n != 0 {
		t.Errorf("%d full payloads encoded without Socket.IO viewers", n)
	}
}
