package ews

import (
	"errors"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"peba-samples", "ewsposter", "ewsposter-resend"} {
		files, _ := filepath.Glob(filepath.Join(fixtures, dir, "*.xml"))
		for _, file := range files {
			f.Add(mustRead(f, file))
		}
	}
	f.Add(alertBody(okAnalyzer+okTime+okSource, "<Alert/>", okTime+okSource+`<Analyzer id="honeytrap"/>`))
	opt := Options{MaxAlerts: 200, MaxFieldBytes: 256, MaxPayloadBytes: 1024}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := Decode(body, opt)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDTD) && !errors.Is(err, ErrTooManyAlerts) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(b.Events)+len(b.Skipped) > opt.MaxAlerts {
			t.Fatalf("%d events + %d skipped", len(b.Events), len(b.Skipped))
		}
		ids := map[string]bool{}
		for _, ev := range b.Events {
			if len(ev.ID) != 32 || ids[ev.ID] {
				t.Fatalf("bad or duplicate id %q", ev.ID)
			}
			ids[ev.ID] = true
			for _, s := range []string{ev.PeerIdent, ev.Username, ev.Password, ev.URL, ev.RawHTTP, ev.Transport, ev.SessionStart} {
				if !utf8.ValidString(s) {
					t.Fatalf("invalid UTF-8 %q", s)
				}
			}
			if len(ev.Username) > opt.MaxFieldBytes || len(ev.RawHTTP) > opt.MaxFieldBytes || len(ev.PeerIdent) > opt.MaxFieldBytes {
				t.Fatalf("field over limit")
			}
			if ev.Payload != nil && len(ev.Payload.Data) > opt.MaxPayloadBytes {
				t.Fatalf("payload data over limit")
			}
		}
		u, tok, ok, err := DecodeAuth(body)
		if err != nil || u != b.Username || tok != b.Token || ok != b.HasAuth {
			t.Fatalf("DecodeAuth disagrees: %q %q %v %v", u, tok, ok, err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	var bodies [][]byte
	var size, alerts int
	for _, file := range glob(b, "ewsposter/*.xml") {
		body := mustRead(b, file)
		bodies = append(bodies, body)
		size += len(body)
		batch, err := Decode(body, Options{})
		if err != nil {
			b.Fatal(err)
		}
		alerts += len(batch.Events)
	}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		for _, body := range bodies {
			if _, err := Decode(body, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(alerts*b.N)/sec, "alerts/s")
	b.ReportMetric(float64(size*b.N)/sec/1e6, "MB/s")
	if cpu := (processCPU() - cpu).Seconds(); cpu > 0 {
		b.ReportMetric(float64(alerts*b.N)/cpu, "alerts/cpu-s")
	}
}
