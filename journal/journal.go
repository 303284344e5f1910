// Package journal is an append-only, checksummed write-ahead log of opaque
// records. Ingest acknowledges a batch once its record is appended and
// fdatasynced here, and applies journaled batches to the store later in large
// transactions; after a crash, Replay hands back every record the store may
// not have, and Checkpoint forgets what the store has.
//
// Layout in the directory: segment files named "%016x.log" (sequence number),
// a new one started when the current one reaches the segment size, and a
// "checkpoint" file naming the position before which everything is applied.
// A record is [uint32 length][uint32 crc32c(length bytes, payload)][payload],
// little endian. The checksum covers the length so that a zeroed or torn
// header is never mistaken for an empty record.
package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Defaults of Options.
const (
	DefaultSegmentSize = 64 << 20
	DefaultMaxRecord   = 64 << 20
)

const (
	headerSize     = 8
	segmentExt     = ".log"
	checkpointName = "checkpoint"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by the errors that report damage which is not a torn
// tail: a bad record followed by good ones, a bad record in a segment that is
// not the last, a missing segment, or a bad checkpoint file.
var ErrCorrupt = errors.New("journal is corrupt")

// Pos is a position in the journal: a segment and a byte offset in it.
// Positions order by (Seg, Off).
type Pos struct {
	Seg uint64
	Off int64
}

// Less reports whether p is before q.
func (p Pos) Less(q Pos) bool {
	return p.Seg < q.Seg || p.Seg == q.Seg && p.Off < q.Off
}

// Options tune a journal. Zero values take the defaults.
type Options struct {
	SegmentSize int64 // start a new segment once the current one has this many bytes
	MaxRecord   int   // largest payload Append accepts and Replay believes
}

// Journal is an open journal directory. Append is meant for one writer
// goroutine, Checkpoint for one applier; the two may run concurrently.
// Replay must finish before the first Append.
type Journal struct {
	dir string
	opt Options

	mu     sync.Mutex // guards f, seg, off, err, buf
	f      *os.File   // current (last) segment, opened for appending
	seg    uint64
	off    int64
	err    error // sticky: after a failed fdatasync nothing is known about the file
	buf    []byte
	cpMu   sync.Mutex // serializes Checkpoint
	cp     Pos        // last durable checkpoint
	closed bool
}

// Open opens (creating if needed) the journal in dir. It checks the last
// segment and truncates a torn tail (a short or bad-checksum record at its
// end, left by a crash during an unacknowledged append), so that appends
// continue after the last complete record. Damage before the end is
// reported as ErrCorrupt by Replay, not repaired.
func Open(dir string, opt Options) (*Journal, error) {
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if opt.MaxRecord <= 0 {
		opt.MaxRecord = DefaultMaxRecord
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create journal directory: %w", err)
	}
	j := &Journal{dir: dir, opt: opt}
	cp, err := readCheckpoint(filepath.Join(dir, checkpointName))
	if err != nil {
		return nil, err
	}
	j.cp = cp
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		// Start where the checkpoint points, so positions stay monotonic.
		if err := j.create(max(cp.Seg, 1)); err != nil {
			return nil, err
		}
		return j, nil
	}
	last := segs[len(segs)-1]
	if last < cp.Seg {
		return nil, fmt.Errorf("%w: checkpoint names segment %016x, the last one is %016x", ErrCorrupt, cp.Seg, last)
	}
	f, err := os.OpenFile(j.path(last), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open journal segment: %w", err)
	}
	end, err := validEnd(f, opt.MaxRecord)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot check journal segment %s: %w", j.path(last), err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != end {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot truncate torn journal tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot sync journal segment: %w", err)
		}
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot seek journal segment: %w", err)
	}
	j.f, j.seg, j.off = f, last, end
	return j, nil
}

// End returns the position after the last record.
func (j *Journal) End() Pos {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Pos{j.seg, j.off}
}

// Append writes payloads as consecutive records with one write and one
// fdatasync, and returns the position after them. When it returns nil, the
// records survive a crash. An error leaves none of them in the journal as
// far as Replay is concerned; after a failed fdatasync every later Append
// fails too (the kernel may have dropped the unwritten pages, so the file's
// content is unknown until the journal is reopened).
func (j *Journal) Append(payloads ...[]byte) (Pos, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return Pos{}, j.err
	}
	if j.closed {
		return Pos{}, errors.New("cannot append to journal: closed")
	}
	if j.off >= j.opt.SegmentSize {
		if err := j.rotate(); err != nil {
			return Pos{}, err
		}
	}
	buf := j.buf[:0]
	for _, p := range payloads {
		if len(p) > j.opt.MaxRecord {
			return Pos{}, fmt.Errorf("cannot append record: %d bytes exceed the limit of %d", len(p), j.opt.MaxRecord)
		}
		buf = appendRecord(buf, p)
	}
	j.buf = buf
	if _, err := j.f.Write(buf); err != nil {
		// Cut off what part of the write landed, so that the next record
		// follows the last good one; if that fails too, give up.
		if terr := j.f.Truncate(j.off); terr != nil {
			j.err = fmt.Errorf("cannot append to journal: %w (and cannot truncate: %v)", err, terr)
			return Pos{}, j.err
		}
		if _, serr := j.f.Seek(j.off, io.SeekStart); serr != nil {
			j.err = fmt.Errorf("cannot append to journal: %w (and cannot seek: %v)", err, serr)
			return Pos{}, j.err
		}
		return Pos{}, fmt.Errorf("cannot append to journal: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		j.err = fmt.Errorf("cannot sync journal: %w", err)
		return Pos{}, j.err
	}
	j.off += int64(len(buf))
	if cap(j.buf) > 4<<20 {
		j.buf = nil // do not pin a huge buffer after one big group
	}
	return Pos{j.seg, j.off}, nil
}

func appendRecord(buf, p []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(len(p)))
	crc := crc32.Update(0, castagnoli, h[:4])
	crc = crc32.Update(crc, castagnoli, p)
	binary.LittleEndian.PutUint32(h[4:], crc)
	return append(append(buf, h[:]...), p...)
}

// rotate closes the current segment and starts the next one.
func (j *Journal) rotate() error {
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("cannot close journal segment: %w", err)
	}
	j.f = nil
	if err := j.create(j.seg + 1); err != nil {
		j.err = err // no open segment to write to
		return err
	}
	return nil
}

// create makes segment seq the current one. The directory is synced so that
// the new file's name survives a crash along with the records in it.
func (j *Journal) create(seq uint64) error {
	f, err := os.OpenFile(j.path(seq), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("cannot create journal segment: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	j.f, j.seg, j.off = f, seq, 0
	return nil
}

// Checkpoint records durably that every record before pos is applied, so
// Replay will not return it again, and deletes the segments that lie
// entirely before pos. A pos not after the last checkpoint is a no-op.
func (j *Journal) Checkpoint(pos Pos) error {
	j.cpMu.Lock()
	defer j.cpMu.Unlock()
	if !j.cp.Less(pos) {
		return nil
	}
	if end := j.End(); end.Less(pos) {
		return fmt.Errorf("cannot checkpoint at %v: after the end of the journal %v", pos, end)
	}
	if err := writeCheckpoint(j.dir, pos); err != nil {
		return err
	}
	j.cp = pos
	segs, err := j.segments()
	if err != nil {
		return err
	}
	for _, seq := range segs {
		if seq >= pos.Seg {
			break
		}
		if err := os.Remove(j.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot delete applied journal segment: %w", err)
		}
	}
	return nil
}

// Replay calls fn, in order, with the payload of every record after the
// checkpoint, up to End. fn must not retain payload after it returns. Replay
// stops at fn's first error and returns it. Damage that is not a torn tail
// (Open removed that) is an error wrapping ErrCorrupt.
func (j *Journal) Replay(fn func(payload []byte) error) error {
	j.cpMu.Lock()
	start := j.cp
	j.cpMu.Unlock()
	end := j.End()
	segs, err := j.segments()
	if err != nil {
		return err
	}
	want := start.Seg
	if want == 0 {
		// Never checkpointed: start at the first segment there is.
		if len(segs) > 0 {
			want = segs[0]
		}
	}
	var buf []byte
	for _, seq := range segs {
		if seq < want {
			continue // applied; a crash hit between checkpoint and delete
		}
		if seq > end.Seg {
			break
		}
		if seq != want {
			return fmt.Errorf("%w: segment %016x is missing", ErrCorrupt, want)
		}
		from := int64(0)
		if seq == start.Seg {
			from = start.Off
		}
		to := int64(-1)
		if seq == end.Seg {
			to = end.Off
		}
		if buf, err = j.replaySegment(seq, from, to, buf, fn); err != nil {
			return err
		}
		want++
	}
	if want <= end.Seg {
		return fmt.Errorf("%w: segment %016x is missing", ErrCorrupt, want)
	}
	return nil
}

// replaySegment reads the records in [from, to) of one segment (to < 0: to
// its end) and calls fn with each.
func (j *Journal) replaySegment(seq uint64, from, to int64, buf []byte, fn func([]byte) error) ([]byte, error) {
	f, err := os.Open(j.path(seq))
	if err != nil {
		return buf, fmt.Errorf("cannot open journal segment: %w", err)
	}
	defer f.Close()
	if to < 0 {
		st, err := f.Stat()
		if err != nil {
			return buf, fmt.Errorf("cannot stat journal segment: %w", err)
		}
		to = st.Size()
	}
	if from > to {
		return buf, fmt.Errorf("%w: checkpoint offset %d is after the end of segment %016x", ErrCorrupt, from, seq)
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, from, to-from), 1<<20)
	for off := from; off < to; {
		var p []byte
		p, buf, err = readRecord(r, buf, j.opt.MaxRecord)
		if err != nil {
			return buf, fmt.Errorf("%w: segment %016x offset %d: %v", ErrCorrupt, seq, off, err)
		}
		if err := fn(p); err != nil {
			return buf, err
		}
		off += headerSize + int64(len(p))
	}
	return buf, nil
}

// readRecord reads one record from r into buf (grown as needed) and
// returns its payload. io.EOF means r ended exactly between records.
func readRecord(r io.Reader, buf []byte, maxRecord int) (payload, newBuf []byte, err error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, buf, io.EOF
		}
		return nil, buf, errors.New("short record header")
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if int64(n) > int64(maxRecord) {
		return nil, buf, fmt.Errorf("record length %d exceeds the limit", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	p := buf[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, buf, errors.New("short record")
	}
	crc := crc32.Update(crc32.Update(0, castagnoli, h[:4]), castagnoli, p)
	if crc != binary.LittleEndian.Uint32(h[4:]) {
		return nil, buf, errors.New("checksum mismatch")
	}
	return p, buf, nil
}

// validEnd returns the offset after the last good record of a last segment.
// A bad record after which no good record ends at the end of the file is a
// torn tail: the bytes of an append that crashed before its fdatasync
// returned, so before anything in it was acknowledged. A bad record followed
// by good records up to the end is damage to acknowledged data: ErrCorrupt.
func validEnd(f *os.File, maxRecord int) (int64, error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, fmt.Errorf("cannot read journal segment: %w", err)
	}
	off := 0
	for off < len(data) {
		n, ok := recordAt(data, off, maxRecord)
		if !ok {
			break
		}
		off += n
	}
	// A chain of good records from a later offset to the end of the file
	// ends with a good record that ends at the end of the file: look for
	// that one.
	for i := len(data) - headerSize; i > off; i-- {
		if n, ok := recordAt(data, i, maxRecord); ok && i+n == len(data) {
			return 0, fmt.Errorf("%w: bad record at offset %d is followed by good records", ErrCorrupt, off)
		}
	}
	return int64(off), nil
}

// recordAt checks the record at data[off:] and returns its total size.
func recordAt(data []byte, off, maxRecord int) (int, bool) {
	if len(data)-off < headerSize {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(data[off:])
	if int64(n) > int64(maxRecord) || int64(n) > int64(len(data)-off-headerSize) {
		return 0, false
	}
	p := data[off+headerSize : off+headerSize+int(n)]
	crc := crc32.Update(crc32.Update(0, castagnoli, data[off:off+4]), castagnoli, p)
	return headerSize + int(n), crc == binary.LittleEndian.Uint32(data[off+4:])
}

// segments lists the segment sequence numbers in ascending order.
func (j *Journal) segments() ([]uint64, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list journal directory: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segmentExt)
		if !ok || len(name) != 16 {
			continue
		}
		seq, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		segs = append(segs, seq)
	}
	slices.Sort(segs)
	return segs, nil
}

func (j *Journal) path(seq uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%016x%s", seq, segmentExt))
}

// Close closes the current segment. Records appended before are durable
// already; Close adds no durability.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	if j.f == nil {
		return nil
	}
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("cannot close journal: %w", err)
	}
	return nil
}

// The checkpoint file is [uint64 seg][int64 off][uint32 crc32c], written to a
// temporary file, synced and renamed over the old one, then the directory is
// synced: after a crash it holds either the old or the new position.
const checkpointSize = 20

func writeCheckpoint(dir string, pos Pos) error {
	var b [checkpointSize]byte
	binary.LittleEndian.PutUint64(b[0:], pos.Seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(pos.Off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	tmp := filepath.Join(dir, checkpointName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("cannot write journal checkpoint: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpointName))
	}
	if err != nil {
		return fmt.Errorf("cannot write journal checkpoint: %w", err)
	}
	return syncDir(dir)
}

// readCheckpoint returns the zero Pos when there is no checkpoint file yet.
func readCheckpoint(path string) (Pos, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Pos{}, nil
	}
	if err != nil {
		return Pos{}, fmt.Errorf("cannot read journal checkpoint: %w", err)
	}
	if len(b) != checkpointSize || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return Pos{}, fmt.Errorf("%w: bad checkpoint file %s", ErrCorrupt, path)
	}
	pos := Pos{Seg: binary.LittleEndian.Uint64(b[0:]), Off: int64(binary.LittleEndian.Uint64(b[8:]))}
	if pos.Off < 0 {
		return Pos{}, fmt.Errorf("%w: bad checkpoint file %s", ErrCorrupt, path)
	}
	return pos, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync journal directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync journal directory: %w", err)
	}
	return nil
}
