package hpfeeds

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// The byte examples of hpfeeds3's protocol.rst (seckc.md §6).
func TestFramesMatchProtocolDoc(t *testing.T) {
	info, err := AppendInfo(nil, "hpfeeds", []byte{0, 0, 0, 0})
	if err != nil || hex.EncodeToString(info) != "0000001101"+hex.EncodeToString([]byte("\x07hpfeeds"))+"00000000" {
		t.Fatalf("info = %x, %v", info, err)
	}
	sub, _ := AppendSubscribe(nil, "client1", "mwcapture")
	if want := "\x00\x00\x00\x16\x04\x07client1mwcapture"; string(sub) != want {
		t.Fatalf("subscribe = %q, want %q", sub, want)
	}
	e, _ := AppendError(nil, "Invalid ident")
	if want := "\x00\x00\x00\x12\x00Invalid ident"; string(e) != want {
		t.Fatalf("error = %q", e)
	}
	f, n, err := DecodeFrame(append(info, 0xff))
	if err != nil || n != len(info) || f.Op != OpInfo {
		t.Fatalf("DecodeFrame = %v %d %v", f, n, err)
	}
	name, nonce, err := ParseInfo(f.Body)
	if err != nil || name != "hpfeeds" || !bytes.Equal(nonce, []byte{0, 0, 0, 0}) {
		t.Fatalf("ParseInfo = %q %x %v", name, nonce, err)
	}
}

func TestAuthRoundTrip(t *testing.T) {
	nonce := []byte{0xd5, 0x37, 0x89, 0x97}
	frame, err := AppendAuth(nil, "honeypot1", "s3cret", nonce)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(bytes.NewReader(frame))
	if err != nil || f.Op != OpAuth {
		t.Fatal(f, err)
	}
	ident, hash, err := ParseAuth(f.Body)
	want := sha1.Sum(append(append([]byte{}, nonce...), "s3cret"...))
	if err != nil || ident != "honeypot1" || !bytes.Equal(hash, want[:]) {
		t.Fatalf("ParseAuth = %q %x %v", ident, hash, err)
	}
}

func TestPublishRoundTrip(t *testing.T) {
	frame, err := AppendPublish(nil, "id", "cowrie.sessions", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	id, ch, p, err := ParsePublish(f.Body)
	if err != nil || id != "id" || ch != "cowrie.sessions" || string(p) != `{"a":1}` {
		t.Fatalf("ParsePublish = %q %q %q %v", id, ch, p, err)
	}
	// Largest payload that fits, and one byte more.
	max := make([]byte, MaxBody-2-len("id")-len("c"))
	if _, err := AppendPublish(nil, "id", "c", max); err != nil {
		t.Fatalf("max payload refused: %v", err)
	}
	if _, err := AppendPublish(nil, "id", "c", append(max, 0)); err == nil {
		t.Fatal("payload over MaxBody accepted")
	}
	if _, err := AppendSubscribe(nil, strings.Repeat("i", 256), "c"); err == nil {
		t.Fatal("ident of 256 bytes accepted")
	}
}

func header(total uint32, op byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, total), op)
}

func TestDecodeFrameRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"unknown opcode":    header(5, 9),
		"length below 5":    header(4, OpPublish),
		"publish over 1MiB": header(HeaderLen+MaxBody+1, OpPublish),
		"info over 281":     header(HeaderLen+277, OpInfo),
		"auth over 281":     header(HeaderLen+277, OpAuth),
		"4GiB":              header(0xffffffff, OpError),
	} {
		if _, _, err := DecodeFrame(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: DecodeFrame err = %v, want ErrProtocol", name, err)
		}
		if _, err := ReadFrame(bytes.NewReader(b)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: ReadFrame err = %v, want ErrProtocol", name, err)
		}
	}
	// Incomplete frames: no error, nothing consumed; ReadFrame says EOF.
	full, _ := AppendPublish(nil, "a", "b", []byte("payload"))
	for i := range len(full) {
		if _, n, err := DecodeFrame(full[:i]); n != 0 || err != nil {
			t.Fatalf("prefix %d: n=%d err=%v", i, n, err)
		}
		if _, err := ReadFrame(bytes.NewReader(full[:i])); i > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("prefix %d: ReadFrame err = %v", i, err)
		}
	}
	for _, body := range [][]byte{{}, {5, 'a'}, {1, 'a', 3, 'b'}} {
		if _, _, _, err := ParsePublish(body); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParsePublish(%q) err = %v", body, err)
		}
	}
	if _, _, err := ParseAuth([]byte{1, 'a', 1, 2}); !errors.Is(err, ErrProtocol) {
		t.Errorf("short auth hash accepted: %v", err)
	}
}

func TestParseErrorIsBoundedText(t *testing.T) {
	got := ParseError(append(bytes.Repeat([]byte("é"), 400), 0xff))
	if len(got) > 512 || !strings.HasPrefix(got, "éé") || strings.ContainsRune(got, 0xff) {
		t.Fatalf("ParseError = %d bytes %q...", len(got), got[:8])
	}
}

func FuzzDecodeFrame(f *testing.F) {
	pub, _ := AppendPublish(nil, "ident", "chan", []byte(`{"x":1}`))
	info, _ := AppendInfo(nil, "hpfeeds", []byte{1, 2, 3, 4})
	auth, _ := AppendAuth(nil, "ident", "secret", []byte{1, 2, 3, 4})
	for _, s := range [][]byte{pub, info, auth, header(5, 0), header(6, 3), {0, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := DecodeFrame(b)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) || n != HeaderLen+len(fr.Body) || len(fr.Body) > MaxBody {
			t.Fatalf("n=%d body=%d len=%d", n, len(fr.Body), len(b))
		}
		// ReadFrame agrees with DecodeFrame.
		fr2, err := ReadFrame(bytes.NewReader(b))
		if err != nil || fr2.Op != fr.Op || !bytes.Equal(fr2.Body, fr.Body) {
			t.Fatalf("ReadFrame = %v, %v", fr2, err)
		}
		switch fr.Op {
		case OpPublish:
			if id, ch, p, err := ParsePublish(fr.Body); err == nil {
				re, err := AppendPublish(nil, id, ch, p)
				if err != nil || !bytes.Equal(re, b[:n]) {
					t.Fatalf("publish does not round-trip: %v", err)
				}
			}
		case OpInfo:
			ParseInfo(fr.Body)
		case OpAuth:
			ParseAuth(fr.Body)
		case OpSubscribe, OpUnsubscribe:
			ParseSubscribe(fr.Body)
		case OpError:
			ParseError(fr.Body)
		}
	})
}
