// Command peba is the honeypot event backend: `peba serve` runs the service;
// the other subcommands manage users, import and export data, and benchmark.
// This file only wires packages together (architecture.md, "Packages").
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Set by the release build with -ldflags "-X main.version=... ".
var (
	version   = "dev"
	commit    = "unknown"
	buildDate = "unknown"
)

const usage = `peba: honeypot event backend (PEBA-compatible)

Usage:
  peba serve [flags]                   run the service (default 127.0.0.1:9922, data in ./peba-data)
  peba user add NAME [--token T]       register a user (private-domain submitter/reader)
  peba user list | remove NAME | set-token NAME [--token T]
  peba user import FILE                import a PEBA users-index export (one _id/_source JSON per line)
  peba import [FILE|-]                 import events (peba export NDJSON or PEBA Elasticsearch documents)
  peba export                          write all events as NDJSON to standard output
  peba bench ingest [flags]            load generator: post ewsposter-shaped batches to a running service
  peba bench gen [flags]               write realistic synthetic events into a (stopped) data directory
  peba bench query [flags]             latency of every statistics endpoint of a running service
  peba check URL [--user U --token T]  smoke test a running instance: post, read back, live feed
  peba health [URL]                    exit 0 if URL (default http://127.0.0.1:9922/healthz) answers 200
  peba geoip lookup IP | info          what the configured GeoIP databases say, and how old they are
  peba version                         print version, commit and build date

Every subcommand accepts the configuration flags (peba serve -h lists them), PEBA_* environment
variables and -config FILE.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "peba:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stderr)
	case "user":
		return runUser(ctx, rest, getenv, stdin, stdout, stderr)
	case "import":
		return runImport(ctx, rest, getenv, stdin, stdout, stderr)
	case "export":
		return runExport(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, getenv, stdout, stderr)
	case "health":
		return runHealth(ctx, rest, stdout)
	case "geoip":
		return runGeoIP(ctx, rest, getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "peba %s (commit %s, built %s)\n", version, commit, buildDate)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown subcommand %q\n\n%s", cmd, usage)
	return errUsage
}
