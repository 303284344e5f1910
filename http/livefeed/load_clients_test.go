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
	lastNum  []byte // memo: events of one batch share their timestamp
	lastTS   int64
}

func (v *viewer) signal(ok bool) {
	v.signaled = true
	v.ready(ok)
}

var tsKey = []byte(`"timestamp":`)

// record times one event received at now. The payload ends with its
// "timestamp" (docs/livefeed.md), so the event is read from its end.
func (v *viewer) record(ev []byte, now time.Time) {
	i := bytes.LastIndexByte(ev, ':')
	if i < len(tsKey)-1 || !bytes.Equal(ev[i+1-len(tsKey):i+1], tsKey) {
		return // not an event (retry:, a heartbeat)
	}
	num := ev[i+1:]
	if j := bytes.IndexAny(num, "},]"); j >= 0 {
		num = num[:j]
	}
	if !bytes.Equal(num, v.lastNum) {
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil {
			return
		}
		v.lastNum = append(v.lastNum[:0], num...)
		v.lastTS = int64(math.Round(f * 1e6))
	}
	if start := v.goTime.Load(); start == 0 || v.lastTS < start {
		return // replay, or published before the measurement
	}
	v.hist[histBucket(now.UnixMicro()-v.lastTS)]++
	v.received++
}

// recordSSE times each event of b, a run of whole SSE messages.
func (v *viewer) recordSSE(b []byte, now time.Time) {
	for len(b) > 0 {
		end := bytes.Index(b, []byte("\n\n"))
		if end < 0 {
			end = len(b)
		}
		v.record(b[:end], now)
		b = b[min(end+2, len(b)):]
	}
}

// sseViewer reads the SSE stream over a plain TCP connection. It does not
// undo the chunked transfer coding: chunks end where the server's writes
// end, between events, so the chunk-size lines sit between two events and
// never inside the timestamp that record reads from an event's end.
func sseViewer(ctx context.Context, host string, v *viewer) error {
	conn, buf, fill, err := dialRaw(ctx, host, "/api/v1/events/stream", "")
	if err != nil {
		return err
	}
	defer conn.Close()
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200")) {
		return fmt.Errorf("response %q", buf[:min(fill, 64)])
	}
	fill = copy(buf, buf[bytes.Index(buf, []byte("\r\n\r\n"))+4:fill])
	v.signal(true)
	for {
		n, err := conn.Read(buf[fill:])
		now := time.Now()
		fill += n
		if end := bytes.LastIndex(buf[:fill], []byte("\n\n")); end >= 0 {
			v.recordSSE(buf[:end], now)
			fill = copy(buf, buf[end+2:fill])
		}
		if fill == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
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

// wsViewer is a minimal Engine.IO 4 / Socket.IO 5 client over a websocket
// (RFC 6455): handshake, open → connect to "/", answer pings, and time
// every "42" event message.
func wsViewer(ctx context.Context, host string, v *viewer) error {
	conn, buf, fill, err := dialRaw(ctx, host, "/socket.io/?EIO=4&transport=websocket",
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
			"Sec-WebSocket-Version: 13\r\n")
	if err != nil {
		return err
	}
	defer conn.Close()
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) {
		return fmt.Errorf("handshake: %q", buf[:min(fill, 64)])
	}
	fill = copy(buf, buf[bytes.Index(buf, []byte("\r\n\r\n"))+4:fill])
	// No CONNECT answer within connectTimeout: give up this connection.
	_ = conn.SetReadDeadline(time.Now().Add(connectTimeout))
	send := func(msg string) error { // a masked text frame (zero mask key)
		_, err := conn.Write(append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...))
		return err
	}
	var msg []byte // a fragmented message being reassembled
	for {
		now := time.Now()
		off := 0
		for {
			f := buf[off:fill]
			if len(f) < 2 {
				break
			}
			fin, op, ln, hdr := f[0]&0x80 != 0, f[0]&0x0f, int(f[1]&0x7f), 2
			switch ln {
			case 126:
				if len(f) < 4 {
					ln = -1
					break
				}
				ln, hdr = int(binary.BigEndian.Uint16(f[2:])), 4
			case 127:
				if len(f) < 10 {
					ln = -1
					break
				}
				ln, hdr = int(binary.BigEndian.Uint64(f[2:])), 10
			}
			if ln < 0 || len(f) < hdr+ln {
				if hdr+ln > len(buf) {
					buf = append(buf, make([]byte, hdr+ln)...)
				}
				break
			}
			p := f[hdr : hdr+ln]
			off += hdr + ln
			switch {
			case op == 8: // close
				return fmt.Errorf("closed by server")
			case op == 9: // websocket ping
				_, _ = conn.Write(append([]byte{0x8a, 0x80 | byte(len(p)), 0, 0, 0, 0}, p...))
				continue
			case !fin || op == 0:
				msg = append(msg, p...)
				if !fin {
					continue
				}
				p, msg = msg, msg[:0]
			}
			switch {
			case bytes.Equal(p, []byte("2")): // Engine.IO ping
				err = send("3")
			case bytes.HasPrefix(p, []byte("0")): // Engine.IO open
				err = send("40")
			case bytes.HasPrefix(p, []byte("40")):
				_ = conn.SetReadDeadline(time.Time{})
				v.signal(true)
			case bytes.HasPrefix(p, []byte("44")):
				return fmt.Errorf("connect_error %s", p)
			case bytes.HasPrefix(p, []byte("42")):
				v.record(p, now)
			}
			if err != nil {
				return err
			}
		}
		fill = copy(buf, buf[off:fill])
		n, err := conn.Read(buf[fill:])
		fill += n
		if err != nil {
			if !v.signaled && errors.Is(err, os.ErrDeadlineExceeded) {
				return errNoConnect
			}
			return err
		}
	}
}

// connectTimeout is how long a viewer waits for the CONNECT answer.
const connectTimeout = 10 * time.Second

var errNoConnect = errors.New("no answer to the Socket.IO CONNECT")
