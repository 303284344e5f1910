package livefeed_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// TestLoad measures the ingest-to-viewer delay with many concurrent viewers
// (issue 4: p99 under 50 ms with 1,000 subscribers at 5,000 events/s) and
// the server's memory per idle viewer. It is not part of the default run:
//
//	PEBA_LIVEFEED_LOAD=1 go test -run 'TestLoad$' -v ./http/livefeed/
//
// Knobs (defaults in brackets): PEBA_LIVEFEED_CLIENTS [1000],
// PEBA_LIVEFEED_RATE events/s [5000], PEBA_LIVEFEED_SECONDS [5],
// PEBA_LIVEFEED_TICK publish interval [10ms], PEBA_LIVEFEED_TRANSPORTS
// [sse,socketio], PEBA_LIVEFEED_WRITEBUDGET (livefeed.Options.WriteBudget;
// -1: no pacing) [livefeed.DefaultWriteBudget]; for profiling, PEBA_LIVEFEED_HEAPPROFILE=file (the idle
// server's heap, written as <transport>-file) and PEBA_LIVEFEED_CLIENTPROFILE
// (TestLoadClients); -cpuprofile profiles the server. To tell the server's
// capacity apart from the viewers' on the same machine,
// PEBA_LIVEFEED_SERVERCPUS and PEBA_LIVEFEED_CLIENTCPUS pin the server's and
// the viewers' process to CPUs (taskset lists, e.g. 0 and 1).
//
// The server (hub, live feed, HTTP) runs in this process and publishes
// like ingest's OnCommit: one hub.Publish per tick with the tick's events,
// each stamped with ReceivedTime just before the call. The viewers run in a
// child process (this test binary re-executed as TestLoadClients), so that
// the CPU time of server and viewers can be told apart; both still share
// the machine's cores, and the report says how much each used. A delay is
// the viewer's receipt time (when the read that completed the event
// returned) minus the event's "timestamp" field (its ReceivedTime): the
// whole path hub → encoder → socket → kernel → viewer.
func TestLoad(t *testing.T) {
	if os.Getenv("PEBA_LIVEFEED_LOAD") == "" {
		t.Skip("set PEBA_LIVEFEED_LOAD=1 to run the live feed load test")
	}
	clients := envInt("PEBA_LIVEFEED_CLIENTS", 1000)
	rate := envInt("PEBA_LIVEFEED_RATE", 5000)
	if cpus := os.Getenv("PEBA_LIVEFEED_SERVERCPUS"); cpus != "" {
		pin(t, os.Getpid(), cpus)
		// The runtime sized itself for all CPUs at start.
		runtime.GOMAXPROCS(countCPUs(t, cpus))
	}
	transports := "sse,socketio"
	if v := os.Getenv("PEBA_LIVEFEED_TRANSPORTS"); v != "" {
		transports = v
	}
	for _, transport := range strings.Split(transports, ",") {
		t.Run(transport, func(t *testing.T) { runLoad(t, transport, clients, rate) })
	}
}

// pin restricts all threads of process pid to cpus (a taskset list).
// Threads started later inherit the affinity of the ones pinned now.
func pin(t *testing.T, pid int, cpus string) {
	t.Helper()
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("taskset %s: %v\n%s", cpus, err, out)
	}
}

// countCPUs counts the CPUs of a taskset list such as "0", "0-1" or "0,2".
func countCPUs(t *testing.T, cpus string) int {
	t.Helper()
	n := 0
	for _, r := range strings.Split(cpus, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || b < a {
			t.Fatalf("bad CPU list %q", cpus)
		}
		n += b - a + 1
	}
	return n
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
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

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadResult is what the viewers' process reports.
type loadResult struct {
	Connected  int           `json:"connected"`
	Received   int64         `json:"received"` // events published after "go"
	Reads      int64         `json:"reads"`    // reads that returned data after "go"
	Bytes      int64         `json:"bytes"`    // what they returned
	CPU        time.Duration `json:"cpu"`      // CPU used between "go" and "stop"
	Hist       [][2]int64    `json:"hist"`     // sparse delay histogram: bucket, count
	MaxRSSKiB  int64         `json:"max_rss_kib"`
	ClientHeap uint64        `json:"client_heap"` // viewers' heap+stacks once connected
}

func runLoad(t *testing.T, transport string, clients, rate int) {
	tick := envDuration("PEBA_LIVEFEED_TICK", 10*time.Millisecond)
	duration := time.Duration(envInt("PEBA_LIVEFEED_SECONDS", 5)) * time.Second
	e := newEnv(t, time.Hour)
	before := heapAndStacks()

	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadClients$")
	if cpus := os.Getenv("PEBA_LIVEFEED_CLIENTCPUS"); cpus != "" {
		cmd = exec.Command("taskset", "-c", cpus, os.Args[0], "-test.run=^TestLoadClients$")
	}
	cmd.Env = append(os.Environ(), "PEBA_LIVEFEED_LOADCLIENT=1", "PEBA_LIVEFEED_LOAD=",
		"PEBA_LIVEFEED_URL="+e.srv.URL, "PEBA_LIVEFEED_TRANSPORT="+transport,
		"PEBA_LIVEFEED_CLIENTS="+strconv.Itoa(clients))
	if cpus := os.Getenv("PEBA_LIVEFEED_CLIENTCPUS"); cpus != "" {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(countCPUs(t, cpus)))
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 16<<20)
	// expect returns the payload of the child's next line with prefix.
	expect := func(prefix string) string {
		for lines.Scan() {
			if l, ok := strings.CutPrefix(lines.Text(), prefix); ok {
				return l
			}
		}
		t.Fatalf("viewer process ended before %q: %v", prefix, lines.Err())
		return ""
	}
	var connected, retries int
	fmt.Sscan(expect("LOAD ready "), &connected, &retries)
	if connected != clients {
		t.Fatalf("%d of %d viewers connected", connected, clients)
	}
	if retries > 0 {
		t.Logf("%s: %d viewers had to connect again (no answer to their Socket.IO CONNECT)", transport, retries)
	}
	time.Sleep(500 * time.Millisecond) // let the Socket.IO joins settle
	per := float64(heapAndStacks()-before) / float64(clients)
	t.Logf("%s: %d idle viewers: server heap+stacks %.1f KiB per viewer", transport, clients, per/1024)
	if path := os.Getenv("PEBA_LIVEFEED_HEAPPROFILE"); path != "" { // the idle server's heap
		f, err := os.Create(transport + "-" + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}

	start := time.Now()
	fmt.Fprintf(stdin, "go %d\n", start.UnixNano())
	cpu0 := cpuTime()
	tk := time.NewTicker(tick)
	n, batches := 0, 0
	for time.Since(start) < duration {
		<-tk.C
		// What the rate owes so far: a late tick publishes a bigger batch,
		// so a starved publisher does not quietly lower the rate.
		k := int(float64(rate)*time.Since(start).Seconds()) - n
		if k <= 0 {
			continue
		}
		evs := make([]peba.Event, k)
		now := time.Now()
		for i := range evs {
			evs[i] = event(fmt.Sprint("e", n), peba.DomainCommunity)
			evs[i].ReceivedTime = now
			n++
		}
		e.hub.Publish(evs)
		batches++
	}
	tk.Stop()
	elapsed := time.Since(start)
	time.Sleep(time.Second) // let the last events arrive
	serverCPU := cpuTime() - cpu0
	fmt.Fprintf(stdin, "stop\n")
	var res loadResult
	if err := json.Unmarshal([]byte(expect("LOAD result ")), &res); err != nil {
		t.Fatal(err)
	}
	window := elapsed + time.Second
	if res.Received == 0 {
		t.Fatal("no events received")
	}
	if res.Received > int64(n*clients) {
		t.Errorf("%d deliveries of %d events to %d viewers: events arrived twice", res.Received, n, clients)
	}
	q := func(p float64) time.Duration { return histQuantile(res.Hist, res.Received, p) }
	t.Logf("%s: %d viewers, %d events/s in %d batches (tick %v) for %v: %d of %d deliveries, p50 %v, p99 %v, max %v; hub dropped %v",
		transport, clients, rate, batches, tick, elapsed.Round(time.Millisecond), res.Received, n*clients,
		q(0.5), q(0.99), q(1), e.metric(t, "peba_livefeed_dropped_events_total"))
	// CPU per delivery varies less with the machine's other load than the
	// delays do.
	perDelivery := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(res.Received) / 1e3 }
	t.Logf("%s: CPU over the %v window: server %.2f cores (%.2f µs per delivery), viewers %.2f cores (%.2f µs) of %d; viewers' process max RSS %d MiB, heap+stacks %.1f KiB per viewer",
		transport, window.Round(time.Millisecond), serverCPU.Seconds()/window.Seconds(), perDelivery(serverCPU),
		res.CPU.Seconds()/window.Seconds(), perDelivery(res.CPU),
		runtime.NumCPU(), res.MaxRSSKiB>>10, float64(res.ClientHeap)/float64(clients)/1024)
	t.Logf("%s: viewers' reads: %.1f per viewer and second, %.0f bytes each, %.0f bytes per delivery",
		transport, float64(res.Reads)/float64(clients)/window.Seconds(), float64(res.Bytes)/float64(max(res.Reads, 1)),
		float64(res.Bytes)/float64(res.Received))
}

// Delay histogram: microseconds, exact below 64 µs, then 64 buckets per
// power of two (under 1.6% error), up to about 10^4 s.
const histBuckets = 64 + 40*64

func histBucket(us int64) int {
	if us < 64 {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - 7 // us>>shift is in [64, 128)
	return min(64+shift*64+int(us>>shift)-64, histBuckets-1)
}

// histUpper is the largest delay of bucket b.
func histUpper(b int) time.Duration {
	if b < 64 {
		return time.Duration(b) * time.Microsecond
	}
	shift := (b - 64) / 64
	m := int64((b-64)%64 + 64)
	return time.Duration((m+1)<<shift-1) * time.Microsecond
}

func histQuantile(hist [][2]int64, total int64, p float64) time.Duration {
	want := int64(float64(total-1)*p) + 1
	var seen int64
	for _, h := range hist {
		seen += h[1]
		if seen >= want {
			return histUpper(int(h[0]))
		}
	}
	return 0
}
