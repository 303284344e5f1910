package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peba-go/peba/ews"
)

// TestSIGKILLLosesNoAcknowledgedBatch kills the real binary with SIGKILL
// while 8 clients are posting, restarts it, and checks that every batch that
// was answered OK is stored, and that no batch is stored in part.
func TestSIGKILLLosesNoAcknowledgedBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "peba")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	dataDir := filepath.Join(tmp, "data")
	start := func() (*exec.Cmd, string) {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "serve", "-bindhost", addr, "-datadir", dataDir, "-loglevel", "warn")
		var logs bytes.Buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("server did not start:\n%s", logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return cmd, "http://" + addr + "/ews-0.1/alert/postSimpleMessage"
	}

	srv, url := start()
	gen := &bodyGen{user: "community-01-user", token: "foth{a5maiCee8fineu7", batch: 100, seed: 42}
	type sent struct {
		body  []byte
		acked bool
	}
	var (
		mu    sync.Mutex
		sents []sent
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second}
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := gen.next(c)
				acked := post(client, url, body) == nil
				mu.Lock()
				sents = append(sents, sent{body, acked})
				mu.Unlock()
				if !acked {
					return // the server is gone
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	close(stop)
	wg.Wait()

	// Restart on the same data (WAL replay), then stop it cleanly.
	srv, _ = start()
	srv.Process.Signal(syscall.SIGTERM)
	if err := srv.Wait(); err != nil {
		t.Fatalf("restarted server did not exit cleanly: %v", err)
	}

	stored := storedEvents(t, dataDir)
	acked, partial := 0, 0
	for _, s := range sents {
		b, err := ews.Decode(s.body, ews.Options{})
		if err != nil {
			t.Fatal(err)
		}
		present := 0
		for _, e := range b.Events {
			if _, ok := stored[e.ID]; ok {
				present++
			}
		}
		if s.acked {
			acked++
			if present != len(b.Events) {
				t.Errorf("acknowledged batch: only %d of %d events stored", present, len(b.Events))
			}
		}
		if present != 0 && present != len(b.Events) {
			partial++
		}
	}
	if partial > 0 {
		t.Errorf("%d batches stored in part", partial)
	}
	if acked < 10 {
		t.Fatalf("only %d batches were acknowledged before the kill: test proves nothing", acked)
	}
	t.Logf("%d batches posted, %d acknowledged before SIGKILL, %d events stored", len(sents), acked, len(stored))
}
