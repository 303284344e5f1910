package livefeed_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/peba-go/peba"
)

// TestLoad measures publish-to-receive delay with many concurrent viewers
// (issue: p99 under 50 ms with 1,000 subscribers at 5,000 events/s) and the
// memory per idle viewer. It is not part of the default run:
//
//	PEBA_LIVEFEED_LOAD=1 go test -run TestLoad -v ./http/livefeed/
//
// PEBA_LIVEFEED_CLIENTS and PEBA_LIVEFEED_RATE override 1000 and 5000.
// Clients and server share the machine, so the figures are pessimistic.
func TestLoad(t *testing.T) {
	if os.Getenv("PEBA_LIVEFEED_LOAD") == "" {
		t.Skip("set PEBA_LIVEFEED_LOAD=1 to run the live feed load test")
	}
	clients := envInt("PEBA_LIVEFEED_CLIENTS", 1000)
	rate := envInt("PEBA_LIVEFEED_RATE", 5000)
	for _, transport := range []string{"sse", "socketio"} {
		t.Run(transport, func(t *testing.T) { runLoad(t, transport, clients, rate) })
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func heapAndStacks() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func runLoad(t *testing.T, transport string, clients, rate int) {
	e := newEnv(t, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	var delays []time.Duration
	record := func(line []byte, now time.Time) {
		i := bytes.LastIndex(line, []byte(`"timestamp":`))
		if i < 0 {
			return
		}
		rest := line[i+len(`"timestamp":`):]
		end := bytes.IndexAny(rest, "}]")
		ts, err := strconv.ParseFloat(string(rest[:end]), 64)
		if err != nil {
			return
		}
		d := now.Sub(time.UnixMicro(int64(ts * 1e6)))
		mu.Lock()
		delays = append(delays, d)
		mu.Unlock()
	}

	before := heapAndStacks()
	var ready sync.WaitGroup
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = clients
	for range clients {
		ready.Add(1)
		switch transport {
		case "sse":
			go sseLoadClient(ctx, t, e.srv.URL, &ready, record)
		case "socketio":
			go wsLoadClient(ctx, t, e.srv.URL, &ready, record)
		}
	}
	ready.Wait()
	time.Sleep(500 * time.Millisecond) // let the Socket.IO joins settle
	per := float64(heapAndStacks()-before) / float64(clients)
	t.Logf("%s: %d idle viewers: %.1f KiB each (server and client side together)", transport, clients, per/1024)

	// Publish like ingest does: one batch per group commit, every 10 ms.
	const tick = 10 * time.Millisecond
	batch := rate * int(tick) / int(time.Second)
	duration := 5 * time.Second
	tk := time.NewTicker(tick)
	start := time.Now()
	n := 0
	for time.Since(start) < duration {
		<-tk.C
		evs := make([]peba.Event, batch)
		now := time.Now()
		for i := range evs {
			evs[i] = event(fmt.Sprint("e", n), peba.DomainCommunity)
			evs[i].ReceivedTime = now
			n++
		}
		e.hub.Publish(evs)
	}
	tk.Stop()
	time.Sleep(time.Second)
	mu.Lock()
	d := slices.Clone(delays)
	mu.Unlock()
	slices.Sort(d)
	if len(d) == 0 {
		t.Fatal("no events received")
	}
	q := func(p float64) time.Duration { return d[int(float64(len(d)-1)*p)] }
	t.Logf("%s: %d viewers, %d events/s for %v: %d of %d deliveries, p50 %v, p99 %v, max %v, hub dropped %v",
		transport, clients, rate, duration, len(d), n*clients, q(0.5), q(0.99), d[len(d)-1],
		e.metric(t, "peba_livefeed_dropped_events_total"))
}

func sseLoadClient(ctx context.Context, t *testing.T, url string, ready *sync.WaitGroup, record func([]byte, time.Time)) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	ready.Done()
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if bytes.HasPrefix(line, []byte("data: ")) {
			record(line, time.Now())
		}
	}
}

// wsLoadClient is a minimal Engine.IO 4 / Socket.IO 5 websocket client.
func wsLoadClient(ctx context.Context, t *testing.T, url string, ready *sync.WaitGroup, record func([]byte, time.Time)) {
	u := "ws" + strings.TrimPrefix(url, "http") + "/socket.io/?EIO=4&transport=websocket"
	c, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		ready.Done()
		t.Error(err)
		return
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	signaled := false
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			if !signaled {
				ready.Done()
			}
			return
		}
		switch {
		case msg[0] == '0': // Engine.IO open: connect to namespace "/"
			_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
		case msg[0] == '2': // ping
			_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
		case bytes.HasPrefix(msg, []byte("40")):
			signaled = true
			ready.Done()
		case bytes.HasPrefix(msg, []byte("42")):
			record(msg, time.Now())
		}
	}
}
