package livefeed_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/http/livefeed"
	"github.com/peba-go/peba/hub"
)

// With pacing (Options.WriteBudget), an SSE viewer written to less than a
// gap ago gets the batches published meanwhile together, in one write, at
// the end of the gap; nothing is lost or reordered.
func TestSSEPacesWrites(t *testing.T) {
	h := hub.New(hub.Options{})
	// One viewer and 10 writes per second: a gap of 100 ms.
	lf := livefeed.New(livefeed.Options{Hub: h, WriteBudget: 10, Heartbeat: time.Hour})
	mux := http.NewServeMux()
	lf.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { lf.Close(); h.Close(); srv.CloseClientConnections(); srv.Close() })
	conn := rawGet(t, &env{srv: srv}, "HTTP/1.1", "/api/v1/events/stream")
	br := bufio.NewReader(conn)
	readUntil(t, conn, br, "\r\n\r\n") // the response head; then one chunk per write
	chunk := func() (string, time.Time) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil {
			t.Fatalf("chunk size %q: %v", line, err)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		return string(b[:n]), time.Now()
	}
	if c, _ := chunk(); c != "retry: 5000\n\n" {
		t.Fatalf("first chunk %q", c)
	}
	ids := func(c string) (out []string) {
		for _, l := range strings.Split(c, "\n") {
			if id, ok := strings.CutPrefix(l, "id: "); ok {
				out = append(out, id)
			}
		}
		return out
	}
	h.Publish([]peba.Event{event("a", peba.DomainCommunity)})
	c, first := chunk()
	if got := fmt.Sprint(ids(c)); got != "[a]" {
		t.Fatalf("first batch: %s", got)
	}
	h.Publish([]peba.Event{event("b", peba.DomainCommunity)})
	h.Publish([]peba.Event{event("c", peba.DomainCommunity), event("d", peba.DomainCommunity)})
	c, second := chunk()
	if got := fmt.Sprint(ids(c)); got != "[b c d]" {
		t.Fatalf("batches within the gap: %s in one write, want [b c d]", got)
	}
	if d := second.Sub(first); d < 80*time.Millisecond {
		t.Errorf("second write %v after the first, want about 100ms", d)
	}
}
