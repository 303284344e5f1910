package livefeed_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestLoadClients is the viewers' side of TestLoad, run by it in a child
// process (PEBA_LIVEFEED_LOADCLIENT=1). It connects PEBA_LIVEFEED_CLIENTS
// anonymous viewers to PEBA_LIVEFEED_URL over PEBA_LIVEFEED_TRANSPORT and
// talks to the parent by lines: it prints "LOAD ready <connected>", reads
// "go <unix ns>" (count events stamped from then on), reads "stop", then
// prints "LOAD result <json>".
//
// The viewers are lean on purpose, so that they cost the shared cores as
// little as possible: they read the stream in large chunks and find each
// event's "timestamp" without decoding the JSON. Every event is still
// located and timed on its own. PEBA_LIVEFEED_CLIENTPROFILE=file writes
// their CPU profile over the measurement.
func TestLoadClients(t *testing.T) {
	if os.Getenv("PEBA_LIVEFEED_LOADCLIENT") != "1" {
		t.Skip("the viewers' process of TestLoad; TestLoad runs it")
	}
	url := os.Getenv("PEBA_LIVEFEED_URL")
	transport := os.Getenv("PEBA_LIVEFEED_TRANSPORT")
	clients := envInt("PEBA_LIVEFEED_CLIENTS", 1000)
	host := strings.TrimPrefix(url, "http://")
	var dial func(context.Context, string, *viewer) error
	switch transport {
	case "sse":
		dial = sseViewer
	case "socketio":
		dial = wsViewer
	default:
		t.Fatalf("unknown transport %q", transport)
	}

	before := heapAndStacks()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		goTime  atomic.Int64 // µs; 0 until "go": nothing is counted
		wg      sync.WaitGroup
		okCount atomic.Int64
		retries atomic.Int64
		readyWG sync.WaitGroup
	)
	viewers := make([]*viewer, clients)
	sem := make(chan struct{}, 64) // do not flood the listen backlog
	for i := range viewers {
		v := &viewer{goTime: &goTime, hist: make([]int64, histBuckets)}
		v.ready = func(ok bool) {
			if ok {
				okCount.Add(1)
			}
			<-sem
			readyWG.Done()
		}
		viewers[i] = v
		readyWG.Add(1)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			// Like the JS client after its connect timeout, a viewer
			// whose connect got no answer tries again on a new
			// connection. (The Socket.IO library starts reading a
			// websocket before it listens for the namespace CONNECT, so
			// under load a CONNECT can be lost; see docs/livefeed.md.)
			for try := 0; ; try++ {
				err := dial(ctx, host, v)
				if v.signaled {
					return
				}
				if !errors.Is(err, errNoConnect) || try == 4 {
					fmt.Fprintln(os.Stderr, "viewer:", err)
					v.signal(false)
					return
				}
				retries.Add(1)
			}
		}()
	}
	readyWG.Wait()
	heap := heapAndStacks() - before
	fmt.Printf("LOAD ready %d %d\n", okCount.Load(), retries.Load())

	in := bufio.NewScanner(os.Stdin)
	var cpu0 time.Duration
	stopProfile := func() {}
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "go":
			ns, _ := strconv.ParseInt(arg, 10, 64)
			goTime.Store(ns / 1e3)
			cpu0 = cpuTime()
			if path := os.Getenv("PEBA_LIVEFEED_CLIENTPROFILE"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					t.Fatal(err)
				}
				// Before "LOAD result": the parent kills this process
				// once it has read it.
				stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
			}
			continue
		case "stop":
		}
		break
	}
	cpu := cpuTime() - cpu0
	stopProfile()
	cancel()
	wg.Wait()

	res := loadResult{Connected: int(okCount.Load()), CPU: cpu, ClientHeap: heap}
	total := make([]int64, histBuckets)
	for _, v := range viewers {
		res.Received += v.received
		res.Reads += v.reads
		res.Bytes += v.bytes
		for b, c := range v.hist {
			total[b] += c
		}
	}
	for b, c := range total {
		if c > 0 {
			res.Hist = append(res.Hist, [2]int64{int64(b), c})
		}
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	res.MaxRSSKiB = ru.Maxrss
	b, _ := json.Marshal(res)
	fmt.Printf("LOAD result %s\n", b)
}

// viewer is one connection's state; only its own goroutine touches it
// until the fleet is stopped.
type viewer struct {
	goTime   *atomic.Int64
	ready    func(bool)
	signaled bool
	hist     []int64
	received int64
	reads    int64 // reads that returned data, while measuring
	bytes    int64 // bytes they returned

	buf     []byte // buf[:fill]: read, not yet consumed
	fill    int
	msg     []byte // a fragmented websocket message being reassembled
	consume func(*viewer, time.Time) error
	write   func([]byte) error
}

// count counts a read of n bytes if the measurement has begun.
func (v *viewer) count(n int) {
	if n > 0 && v.goTime.Load() != 0 {
		v.reads++
		v.bytes += int64(n)
	}
}

func (v *viewer) signal(ok bool) {
	v.signaled = true
	v.ready(ok)
}

var tsKey = []byte(`"timestamp":`)

// record times one event received at now. The payload ends with its
// "timestamp" (docs/livefeed.md), so the event is read from its end: the
// last ':' must close the "timestamp" key, and the number after it is read
// digit by digit (every event's own, no shortcut for events of one batch).
func (v *viewer) record(ev []byte, now time.Time) {
	i := bytes.LastIndexByte(ev, ':')
	if i < len(tsKey)-1 || !bytes.Equal(ev[i+1-len(tsKey):i+1], tsKey) {
		return // not an event (retry:, a heartbeat)
	}
	ts, ok := parseMicros(ev[i+1:])
	if !ok {
		return
	}
	if start := v.goTime.Load(); start == 0 || ts < start {
		return // replay, or published before the measurement
	}
	v.hist[histBucket(now.UnixMicro()-ts)]++
	v.received++
}

// parseMicros reads the JSON number of seconds at the start of b (digits,
// optionally a fraction, as strconv's 'f' format writes it) as
// microseconds, rounded; it stops at the first byte after the number.
func parseMicros(b []byte) (int64, bool) {
	var sec int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		sec = sec*10 + int64(b[i]-'0')
	}
	if i == 0 || i > 12 {
		return 0, false
	}
	var frac, digits int64 // frac: the first 7 digits of the fraction
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if digits < 7 {
				frac = frac*10 + int64(b[i]-'0')
				digits++
			}
		}
	}
	frac *= pow10[7-digits] // in units of 1e-7 s
	return sec*1e6 + (frac+5)/10, true
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7}

// recordSSE times each event of b, a run of whole SSE messages. An event's
// message ends with its payload's closing brace and the blank line, a
// sequence found nowhere else (JSON escapes line feeds in strings); other
// messages (retry, heartbeats) stay attached to the next event's text,
// where record does not look.
func (v *viewer) recordSSE(b []byte, now time.Time) {
	for len(b) > 0 {
		end := bytes.Index(b, []byte("}\n\n"))
		if end < 0 {
			end = len(b)
		}
		v.record(b[:end], now)
		b = b[min(end+3, len(b)):]
	}
}

// sseViewer connects an SSE viewer over a plain TCP connection. It does
// not undo the chunked transfer coding: chunks end where the server's
// writes end, between events, so the chunk-size lines sit between two
// events and never inside the timestamp that record reads from an event's
// end.
func sseViewer(ctx context.Context, host string, v *viewer) error {
	conn, buf, fill, err := dialRaw(ctx, host, "/api/v1/events/stream", "")
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200")) {
		conn.Close()
		return fmt.Errorf("response %q", buf[:min(fill, 64)])
	}
	v.buf, v.fill = buf, copy(buf, buf[bytes.Index(buf, []byte("\r\n\r\n"))+4:fill])
	v.consume = (*viewer).consumeSSE
	v.signal(true)
	return v.run(conn)
}

// consumeSSE times the complete SSE messages in buf[:fill] and keeps the
// rest.
func (v *viewer) consumeSSE(now time.Time) error {
	if end := bytes.LastIndex(v.buf[:v.fill], []byte("\n\n")); end >= 0 {
		v.recordSSE(v.buf[:end], now)
		v.fill = copy(v.buf, v.buf[end+2:v.fill])
	}
	if v.fill == len(v.buf) {
		v.buf = append(v.buf, make([]byte, len(v.buf))...)
	}
	return nil
}

// run reads conn until it fails.
func (v *viewer) run(conn net.Conn) error {
	defer conn.Close()
	v.write = func(b []byte) error { _, err := conn.Write(b); return err }
	for {
		n, err := conn.Read(v.buf[v.fill:])
		now := time.Now()
		v.fill += n
		v.count(n)
		if n > 0 {
			if err := v.consume(v, now); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
	}
}

// dialRaw sends a GET on a new connection and reads up to the end of the
// response header: buf[:fill] holds the header and what followed it.
func dialRaw(ctx context.Context, host, path, extra string) (conn net.Conn, buf []byte, fill int, err error) {
	var d net.Dialer
	if conn, err = d.DialContext(ctx, "tcp", host); err != nil {
		return nil, nil, 0, err
	}
	go func() { <-ctx.Done(); conn.Close() }()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, host, extra)
	buf = make([]byte, 64<<10)
	for !bytes.Contains(buf[:fill], []byte("\r\n\r\n")) {
		n, err := conn.Read(buf[fill:])
		fill += n
		if err != nil {
			conn.Close()
			return nil, nil, 0, err
		}
	}
	return conn, buf, fill, nil
}

// wsViewer connects a minimal Engine.IO 4 / Socket.IO 5 client over a
// websocket (RFC 6455): handshake, open → connect to "/", then answer
// pings and time every "42" event message.
func wsViewer(ctx context.Context, host string, v *viewer) error {
	conn, buf, fill, err := dialRaw(ctx, host, "/socket.io/?EIO=4&transport=websocket",
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
			"Sec-WebSocket-Version: 13\r\n")
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) {
		conn.Close()
		return fmt.Errorf("handshake: %q", buf[:min(fill, 64)])
	}
	v.buf, v.fill = buf, copy(buf, buf[bytes.Index(buf, []byte("\r\n\r\n"))+4:fill])
	v.consume = (*viewer).consumeWS
	v.write = func(b []byte) error { _, err := conn.Write(b); return err }
	// No CONNECT answer within connectTimeout: give up this connection.
	_ = conn.SetReadDeadline(time.Now().Add(connectTimeout))
	for {
		if err := v.consume(v, time.Now()); err != nil {
			conn.Close()
			return err
		}
		if v.signaled {
			break
		}
		n, err := conn.Read(v.buf[v.fill:])
		v.fill += n
		if err != nil {
			conn.Close()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return errNoConnect
			}
			return err
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	return v.run(conn)
}

// consumeWS handles the complete websocket frames in buf[:fill] and keeps
// the rest.
func (v *viewer) consumeWS(now time.Time) error {
	buf, off := v.buf, 0
	send := func(msg string) error { // a masked text frame (zero mask key)
		return v.write(append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...))
	}
	defer func() { v.fill = copy(v.buf, v.buf[off:v.fill]) }()
	for {
		f := buf[off:v.fill]
		if len(f) < 2 {
			return nil
		}
		fin, op, ln, hdr := f[0]&0x80 != 0, f[0]&0x0f, int(f[1]&0x7f), 2
		switch ln {
		case 126:
			if len(f) < 4 {
				return nil
			}
			ln, hdr = int(binary.BigEndian.Uint16(f[2:])), 4
		case 127:
			if len(f) < 10 {
				return nil
			}
			ln, hdr = int(binary.BigEndian.Uint64(f[2:])), 10
		}
		if len(f) < hdr+ln {
			if hdr+ln > len(buf) {
				v.buf = append(v.buf, make([]byte, hdr+ln)...)
			}
			return nil
		}
		p := f[hdr : hdr+ln]
		off += hdr + ln
		switch {
		case op == 8: // close
			return fmt.Errorf("closed by server")
		case op == 9: // websocket ping
			if err := v.write(append([]byte{0x8a, 0x80 | byte(len(p)), 0, 0, 0, 0}, p...)); err != nil {
				return err
			}
			continue
		case !fin || op == 0:
			v.msg = append(v.msg, p...)
			if !fin {
				continue
			}
			p, v.msg = v.msg, v.msg[:0]
		}
		var err error
		switch {
		case len(p) > 2 && p[0] == '4' && p[1] == '2': // an event
			v.record(p, now)
		case bytes.Equal(p, []byte("2")): // Engine.IO ping
			err = send("3")
		case bytes.HasPrefix(p, []byte("0")): // Engine.IO open
			err = send("40")
		case bytes.HasPrefix(p, []byte("40")):
			v.signal(true)
		case bytes.HasPrefix(p, []byte("44")):
			return fmt.Errorf("connect_error %s", p)
		}
		if err != nil {
			return err
		}
	}
}

// connectTimeout is how long a viewer waits for the CONNECT answer.
const connectTimeout = 10 * time.Second

var errNoConnect = errors.New("no answer to the Socket.IO CONNECT")

// TestParseMicros checks the viewers' timestamp reader against strconv on
// timestamps written the way the payload writes them.
func TestParseMicros(t *testing.T) {
	base := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).UnixMicro()
	for i := int64(0); i < 200000; i++ {
		us := base + i*7919 + i%1000000
		s := strconv.FormatFloat(float64(us)/1e6, 'f', -1, 64)
		got, ok := parseMicros([]byte(s + "}]"))
		f, _ := strconv.ParseFloat(s, 64)
		if want := int64(math.Round(f * 1e6)); !ok || got != want || got != us {
			t.Fatalf("%s: got %d, %v; want %d (%d)", s, got, ok, want, us)
		}
	}
	for _, bad := range []string{"", "}", "x1", "1234567890123456.5"} {
		if _, ok := parseMicros([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// BenchmarkViewerSSE measures the viewers' own cost per event (finding and
// timing it), a part of the load test's CPU that is not the server's.
func BenchmarkViewerSSE(b *testing.B) {
	var buf []byte
	for i := range 50 {
		buf = fmt.Appendf(buf, "id: e%d\nevent: hpfeedevent\ndata: {\"event_id\":\"e%[1]d\",\"src_ip\":\"203.0.113.9\","+
			"\"src_port\":40000,\"dst_port\":22,\"protocol\":\"tcp\",\"peerType\":\"SSH/console(cowrie)\",\"peerIdent\":\"sensor-1\","+
			"\"identifier\":\"sensor-1\",\"channel\":\"ews\",\"timestamp\":1795287885.%06[2]d}\n\n", 1000000+i, 224657+i)
	}
	var start atomic.Int64
	start.Store(1)
	v := &viewer{goTime: &start, hist: make([]int64, histBuckets)}
	now := time.Now()
	for b.Loop() {
		v.recordSSE(buf, now)
	}
	if v.received != int64(b.N)*50 {
		b.Fatalf("%d events timed, want %d", v.received, b.N*50)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(v.received), "ns/event")
}
