// Package pgtest gives tests a fresh, empty PostgreSQL database on a real
// server (no mocks). The server is, in order of preference:
//
//   - the one named by PEBA_TEST_POSTGRES_DSN (a DSN whose user may create
//     databases, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable);
//   - a throw-away cluster that pgtest starts in a temporary directory, if
//     PostgreSQL's server binaries (initdb, postgres) are installed; as root
//     it runs them as user postgres, since initdb refuses root;
//   - none: the test is skipped with a message saying how to enable it,
//     unless PEBA_REQUIRE_POSTGRES=1 (CI), which makes it fail instead.
//
// Each DSN call creates a database peba_t_<random> and drops it (WITH
// (FORCE)) when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	EnvDSN     = "PEBA_TEST_POSTGRES_DSN"
	EnvRequire = "PEBA_REQUIRE_POSTGRES"
)

var (
	serverOnce sync.Once
	serverDSN  string
	serverErr  error
	serverWhat string // for test logs
)

// DSN returns the DSN of a new, empty database for t, dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	base := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: cannot connect to the test server: %v", err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	name := "peba_t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: cannot create database %s: %v", name, err)
	}
	t.Logf("pgtest: database %s on %s", name, serverWhat)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: cannot drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: cannot drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		// A key=value DSN: a later dbname wins.
		return base + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

// server returns the base DSN, or skips or fails t.
func server(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			serverDSN, serverWhat = dsn, "the server of "+EnvDSN
			return
		}
		serverDSN, serverErr = startCluster()
		serverWhat = "a throw-away server"
	})
	if serverErr != nil {
		msg := fmt.Sprintf("no PostgreSQL server for this test (%v); set %s=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable "+
			"to use a running server, or install PostgreSQL's server binaries (Debian: apt-get install postgresql)", serverErr, EnvDSN)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1: %s", EnvRequire, msg)
		}
		t.Skip(msg)
	}
	return serverDSN
}

// binDir returns the directory of the newest installed PostgreSQL server
// binaries.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and postgres not found")
}

func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// startCluster initializes and starts a throw-away cluster (trust
// authentication, fsync off) on a free local port, as a child of the test
// process that ends with it: the kernel signals the child shell when the
// test binary exits (Pdeathsig), and the shell then stops postgres and
// removes the cluster's directory.
func startCluster() (string, error) {
	bin, err := binDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "peba-pgtest-")
	if err != nil {
		return "", err
	}
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		pu, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("running as root and there is no user postgres to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(pu.Uid)
		gid, _ := strconv.Atoi(pu.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: attr.Credential}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	// sh gets SIGTERM when the test binary exits; its trap asks postgres
	// for a fast shutdown, waits for it, and removes the directory.
	script := `"$1/postgres" -D "$2/data" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >"$2/postgres.log" 2>&1 &
pid=$!
trap 'kill -INT $pid' TERM INT
wait $pid
wait $pid
rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, "sh", bin, dir, strconv.Itoa(port))
	cmd.SysProcAttr = attr
	// Linux sends Pdeathsig when the thread that started the child exits,
	// not the process (golang/go#27505), and Go ends a thread whose
	// goroutine exits while locked to it (ingest's applier does): the
	// server died under a test that had started it from such a thread.
	// Start it from a thread that lives as long as the test binary.
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			cmd.Wait()
		}
		select {} // keep the thread, and so the server, until the test binary exits
	}()
	if err := <-started; err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, dsn)
		cancel()
		if err == nil {
			c.Close(context.Background())
			return dsn, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return "", fmt.Errorf("the throw-away server did not start: %v; log: %s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
