package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/internal/pgtest"
)

// pebaNode is one `peba serve` process of the multi-node test.
type pebaNode struct {
	name, addr, dir string
	cmd             *exec.Cmd
	logs            *bytes.Buffer // read only after the process exited
}

func (n *pebaNode) base() string { return "http://" + n.addr }

// TestThreeNodesShareOnePostgres is issue 5's proof: three `peba serve`
// processes on one PostgreSQL database; clients post community and private
// batches to all three while node A is SIGKILLed and restarted, resending
// unanswered batches as ewsposter does. Afterwards every acknowledged event
// is stored exactly once, every node answers the statistics endpoints
// identically, a live feed subscriber on node C saw every stored event
// exactly once (events committed through A and B included), and no node
// wrote anything to its data directory.
func TestThreeNodesShareOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dsn := pgtest.DSN(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "peba")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}

	// A registered user, created with the CLI against the shared database,
	// may submit and see private events.
	const alice, aliceToken = "alice", "alice-token-0123456789"
	if out, err := exec.Command(bin, "user", "add", alice, "--token", aliceToken, "-postgres_dsn", dsn).CombinedOutput(); err != nil {
		t.Fatalf("peba user add: %v\n%s", err, out)
	}

	nodes := make([]*pebaNode, 3)
	for i := range nodes {
		nodes[i] = &pebaNode{name: string(rune('A' + i)), addr: freeAddr(t), dir: filepath.Join(tmp, "node"+string(rune('A'+i)))}
	}
	start := func(n *pebaNode) {
		t.Helper()
		n.logs = &bytes.Buffer{}
		n.cmd = exec.Command(bin, "serve", "-bindhost", n.addr, "-postgres_dsn", dsn, "-datadir", n.dir,
			"-loglevel", "warn", "-responsecache", "off", "-ratelimit_address", "0", "-ratelimit_sensor", "0")
		n.cmd.Stderr = n.logs
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			if resp, err := http.Get(n.base() + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			if time.Now().After(deadline) {
				n.cmd.Process.Kill()
				n.cmd.Wait()
				t.Fatalf("node %s did not start:\n%s", n.name, n.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Registered after pgtest's cleanup, so it runs before the database is
	// dropped.
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.cmd != nil && n.cmd.ProcessState == nil {
				n.cmd.Process.Kill()
				n.cmd.Wait()
			}
		}
	})
	for _, n := range nodes {
		start(n)
	}

	// The live feed subscriber on node C, with credentials that see both
	// domains. SSE carries the event ID in each message's id field.
	req, _ := http.NewRequest("GET", nodes[2].base()+"/api/v1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+alice+":"+aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("SSE: %s", resp.Status)
	}
	var (
		sseMu sync.Mutex
		sse   = map[string]int{}
	)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				sseMu.Lock()
				sse[id]++
				sseMu.Unlock()
			}
		}
	}()

	// Six clients, two per node, alternating community and private data.
	// Each resends a batch until it is acknowledged, as ewsposter does.
	gens := []*bodyGen{
		{user: "community-01-user", token: "foth{a5maiCee8fineu7", batch: 10, seed: 1},
		{user: alice, token: aliceToken, batch: 10, seed: 2},
	}
	var (
		mu          sync.Mutex
		acked, sent = map[string]bool{}, map[string]bool{}
		resends     int
		wg          sync.WaitGroup
	)
	stop := make(chan struct{})
	httpc := &http.Client{Timeout: 10 * time.Second}
	for c := range 6 {
		n, gen := nodes[c%3], gens[c%2]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := gen.next(c)
				b, err := ews.Decode(body, ews.Options{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, e := range b.Events {
					sent[e.ID] = true
				}
				mu.Unlock()
				for deadline := time.Now().Add(30 * time.Second); post(httpc, n.base()+"/ews-0.1/alert/postSimpleMessage", body) != nil; {
					if time.Now().After(deadline) {
						t.Errorf("client %d: node %s did not accept a batch for 30 s", c, n.name)
						return
					}
					mu.Lock()
					resends++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				for _, e := range b.Events {
					acked[e.ID] = true
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	a := nodes[0]
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	time.Sleep(500 * time.Millisecond)
	start(a) // same address: its clients' resends reach the new process
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Every acknowledged event is stored, exactly once; nothing else is.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, distinct int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM events`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != distinct {
		t.Errorf("%d event rows for %d IDs: some event is stored more than once", rows, distinct)
	}
	r, err := conn.Query(ctx, `SELECT id FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, id := range ids {
		stored[id] = true
		if !sent[id] {
			t.Errorf("stored event %s was never sent", id)
		}
	}
	for id := range acked {
		if !stored[id] {
			t.Errorf("acknowledged event %s is not stored", id)
		}
	}
	if len(acked) < 500 {
		t.Fatalf("only %d events acknowledged: the test proves little", len(acked))
	}
	t.Logf("%d events sent, %d acknowledged, %d stored; %d resends; restarted A skipped %s resent events as duplicates",
		len(sent), len(acked), len(stored), resends, scrapeMetric(a.base(), `peba_ingest_events_total{result="duplicate"}`))

	// The subscriber on C saw each stored event once, also those committed
	// through A (before and after its restart) and B.
	for deadline := time.Now().Add(15 * time.Second); ; {
		sseMu.Lock()
		n := len(sse)
		sseMu.Unlock()
		if n >= len(stored) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a late duplicate would show now
	sseMu.Lock()
	missing, extra, dups := 0, 0, 0
	for id := range stored {
		if sse[id] == 0 {
			missing++
		}
	}
	for id, c := range sse {
		if !stored[id] {
			extra++
		}
		if c > 1 {
			dups++
		}
	}
	sseMu.Unlock()
	if missing+extra+dups > 0 {
		t.Errorf("live feed on C: %d stored events missing, %d not stored, %d seen more than once (of %d); C's hub dropped %s",
			missing, extra, dups, len(stored), scrapeMetric(nodes[2].base(), "peba_livefeed_dropped_events_total"))
	}

	// Every node answers the statistics endpoints identically (the response
	// cache is off), and the answers count what is stored.
	paths := []string{
		"/alert/retrieveAlertsCount?time=60&out=json&ci=-1",
		"/alert/retrieveAlertsCountWithType?time=60&ci=-1",
		"/alert/retrieveAlertsJson?ci=-1",
		"/alert/topCountriesAttacks?ci=-1",
		"/alert/tops?type=destports&days=1&topx=5&ci=-1",
		"/alert/retrieveAlertStats?ci=-1",
		"/alert/retrieveLatLonAttacks?ci=-1",
		"/alert/TpotStats?ci=-1",
	}
	for _, p := range paths {
		var first string
		for i, n := range nodes {
			req, _ := http.NewRequest("GET", n.base()+p, nil)
			req.Header.Set("Authorization", "Bearer "+alice+":"+aliceToken)
			resp, err := httpc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("node %s %s: %d %s", n.name, p, resp.StatusCode, b)
			}
			if i == 0 {
				first = string(b)
			} else if string(b) != first {
				t.Errorf("%s: node %s answers differently from A:\nA: %.300s\n%s: %.300s", p, n.name, first, n.name, b)
			}
		}
		if strings.HasPrefix(p, "/alert/retrieveAlertsCount?") && strings.TrimSpace(first) != fmt.Sprintf(`{"AlertCount":%d}`, len(stored)) {
			t.Errorf("retrieveAlertsCount answers %s for %d stored events", first, len(stored))
		}
	}

	// Nodes are stateless: nothing in their data directories.
	for _, n := range nodes {
		if entries, err := os.ReadDir(n.dir); err == nil && len(entries) > 0 {
			t.Errorf("node %s wrote %d entries to its data directory", n.name, len(entries))
		}
	}
	for _, n := range nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
		if err := n.cmd.Wait(); err != nil {
			t.Errorf("node %s did not exit cleanly: %v\n%s", n.name, err, n.logs)
		}
	}
}

// scrapeMetric returns the value of an unlabelled metric from a node's
// /metrics, or why it could not.
func scrapeMetric(base, name string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return "?"
}

// The subcommands that open a store use the PostgreSQL database when
// POSTGRES_DSN is set, also from the environment and while a node serves
// it (no single-writer lock as with the embedded store).
func TestSubcommandsUsePostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir() // DATADIR must stay unused
	// Retention off: one imported PEBA document is from 2018.
	in := startServe(t, dir, "-postgres_dsn", dsn, "-retentiondays", "0")

	envm := map[string]string{"PEBA_POSTGRES_DSN": dsn, "PEBA_DATADIR": dir, "PEBA_RETENTIONDAYS": "0"}
	runEnv := func(stdin string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, env(envm), strings.NewReader(stdin), &out, &errOut); err != nil {
			t.Fatalf("peba %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	recent := pebaDocAt("p-recent", time.Now().Add(-time.Minute), false, "SSH/console(cowrie)", "87.150.238.111", "DE", "Germany", "")
	if out := runEnv(pebaDoc+"\n"+recent+"\n", "import"); !strings.Contains(out, "2 events imported") {
		t.Fatalf("import: %q", out)
	}
	if out := runEnv("", "user", "add", "bob", "--token", "bob-token-123456"); !strings.Contains(out, "added user bob") {
		t.Fatalf("user add: %q", out)
	}
	if out := runEnv("", "user", "list"); !strings.Contains(out, "bob") {
		t.Fatalf("user list: %q", out)
	}
	if out := runEnv("", "export"); !strings.Contains(out, `"518ddeb1e5372e318cf15172fc32fae5"`) {
		t.Fatalf("export: %q", out)
	}
	// The serving node sees both at once: the imported private event in
	// its ticker, for the new user.
	req, _ := http.NewRequest("GET", in.base+"/alert/retrieveAlertsJson?ci=-1", nil)
	req.Header.Set("Authorization", "Bearer bob:bob-token-123456")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"p-recent"`) {
		t.Errorf("node after import: %d %s", resp.StatusCode, b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("DATADIR used: %d entries", len(entries))
	}
}
