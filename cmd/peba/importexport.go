package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/pebadoc"
)

// maxImportLine bounds one NDJSON line (a PEBA document with a large
// rawhttp/additionalData stays far below it).
const maxImportLine = 16 << 20

func openInput(name string, stdin io.Reader) (io.Reader, func(), error) {
	if name == "" || name == "-" {
		return stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open input: %w", err)
	}
	return f, func() { f.Close() }, nil
}

func runImport(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, fs, err := config.Load("import", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("import takes at most one FILE argument")
	}
	r, closeIn, err := openInput(fs.Arg(0), stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	store, err := openStore(cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()
	st, err := importEvents(ctx, store, r, stderr)
	fmt.Fprintf(stdout, "read %d lines: %d events imported, %d already present, %d invalid\n", st.lines, st.inserted, st.duplicates, st.invalid)
	return err
}

type importStats struct{ lines, inserted, duplicates, invalid int }

// importEvents reads NDJSON events (peba export lines or PEBA Elasticsearch
// documents) and appends them in batches. Import is idempotent: event IDs
// (PEBA's _id for PEBA documents) de-duplicate a repeated import.
func importEvents(ctx context.Context, store peba.Store, r io.Reader, stderr io.Writer) (importStats, error) {
	var st importStats
	br := bufio.NewReaderSize(r, 1<<20)
	const batchSize = 5000
	batch := make([]peba.Event, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := store.AppendEvents(ctx, batch)
		if err != nil {
			return fmt.Errorf("cannot store events (lines up to %d): %w", st.lines, err)
		}
		st.inserted += len(res.Inserted)
		st.duplicates += len(batch) - len(res.Inserted)
		batch = batch[:0]
		return nil
	}
	for {
		line, err := readLine(br)
		if err == io.EOF {
			break
		}
		st.lines++
		if err != nil {
			fmt.Fprintf(stderr, "line %d: %v\n", st.lines, err)
			st.invalid++
			continue
		}
		if len(line) == 0 {
			continue
		}
		ev, err := pebadoc.UnmarshalEvent(line)
		if err != nil {
			st.invalid++
			if st.invalid <= 100 {
				fmt.Fprintf(stderr, "line %d: %v\n", st.lines, err)
			}
			continue
		}
		batch = append(batch, ev)
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	return st, flush()
}

// readLine returns the next line without its line ending. A line longer
// than maxImportLine is consumed and reported as an error, so that one bad
// line does not stop the import.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > maxImportLine {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(buf) == 0 && !tooLong:
			return nil, io.EOF
		case err != nil && err != io.EOF:
			return nil, err
		case tooLong:
			return nil, fmt.Errorf("line longer than %d bytes", maxImportLine)
		}
		return trimEOL(buf), nil
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := config.Load("export", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	store, err := openStore(cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()
	w := bufio.NewWriterSize(stdout, 1<<20)
	n := 0
	err = store.ExportEvents(ctx, func(e *peba.Event) error {
		line, err := pebadoc.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("cannot encode event %s: %w", e.ID, err)
		}
		line = append(line, '\n')
		n++
		_, err = w.Write(line)
		return err
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d events\n", n)
	return nil
}
