package main

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba/internal/testfixtures"
)

// TestPostedEventsReachTheLiveFeed posts an EWS batch to a running service
// and reads it from the anonymous SSE stream: the whole path from ingest to
// a viewer, with sanitizing.
func TestPostedEventsReachTheLiveFeed(t *testing.T) {
	in := startServe(t, t.TempDir())
	req, _ := http.NewRequest("GET", in.base+"/api/v1/events/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if status, got, _ := postEWS(t, in.base+"/ews-0.1/alert/postSimpleMessage", testfixtures.Read(t, "peba-samples", "heralding.xml")); status != 200 {
		t.Fatalf("post: %d %s", status, got)
	}
	events := 0
	timeout := time.After(10 * time.Second)
	for events < 4 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			if !strings.HasPrefix(l, "data: ") {
				continue
			}
			events++
			// heralding.xml's target is 87.150.238.182: the sensor's address
			// must not reach anonymous viewers; the attacker's may.
			if strings.Contains(l, "87.150.238.182") || strings.Contains(l, `"password"`) || !strings.Contains(l, "172.21.0.1") {
				t.Errorf("anonymous payload not sanitized as documented: %s", l)
			}
		case <-timeout:
			t.Fatalf("received %d of 4 events", events)
		}
	}
}
