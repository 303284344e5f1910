package ews

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/peba-go/peba"
)

// Errors returned by Decode and DecodeAuth. They are *peba.Error values, so
// peba.ErrorCode maps them (EINVALID, EINVALID, ETOOLARGE -> 400, 400, 413)
// and errors.Is matches them through the wrapping that adds the detail.
var (
	// ErrMalformed: the body is not well-formed XML, not UTF-8, or contains
	// characters XML forbids.
	ErrMalformed = &peba.Error{Code: peba.EINVALID, Message: "malformed EWS XML"}
	// ErrDTD: the body contains a DOCTYPE or other <!...> declaration. PEBA's
	// defusedxml forbids entity declarations (peba.md §4.1); we refuse any DTD.
	ErrDTD = &peba.Error{Code: peba.EINVALID, Message: "EWS XML must not contain a DTD"}
	// ErrTooManyAlerts: the body holds more Alert elements than Options.MaxAlerts.
	ErrTooManyAlerts = &peba.Error{Code: peba.ETOOLARGE, Message: "too many alerts in one EWS message"}
)

// Default limits of Options.
const (
	DefaultMaxAlerts       = 1000
	DefaultMaxFieldBytes   = 64 << 10
	DefaultMaxPayloadBytes = 10 << 20
)

// Options bound what one body may make the decoder do. Zero fields take the
// defaults.
type Options struct {
	// MaxAlerts is the maximum number of Alert elements per body (default
	// 1000); more make Decode fail with ErrTooManyAlerts.
	MaxAlerts int
	// MaxFieldBytes bounds every text field of an event (default 65536).
	// Longer values are truncated at a UTF-8 boundary and the truncation is
	// recorded in Event.Fields as Attr{"_truncated", "<field name>"}.
	MaxFieldBytes int
	// MaxPayloadBytes bounds decoded payloads kept in memory (default 10 MiB).
	// Larger payloads keep MD5, FuzzyHash, MIME and Size but get Data=nil.
	MaxPayloadBytes int
}

func (o Options) withDefaults() Options {
	if o.MaxAlerts <= 0 {
		o.MaxAlerts = DefaultMaxAlerts
	}
	if o.MaxFieldBytes <= 0 {
		o.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if o.MaxPayloadBytes <= 0 {
		o.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	return o
}

// Batch is one decoded EWS body.
type Batch struct {
	// Username and Token come from the first direct child Authentication of
	// the root (peba.md §2.2), first username/token element each.
	Username, Token string
	// HasAuth reports that both the username and the token element exist.
	HasAuth bool
	// Events are the stored-worthy alerts in document order.
	Events []peba.Event
	// Skipped lists the alerts that can never be stored, in document order.
	Skipped []Skip
}

// Skip describes an alert that was dropped.
type Skip struct {
	Index  int    // 0-based position among the body's Alert elements (document order)
	Reason string // short human sentence, e.g. "alert 3: Source is not an IP address" (same 0-based number)
}

// Decode parses an EWS-SimpleMessage body like PEBA 1.x's PUT service
// (peba.md §4) with the fixes listed in docs/ews-decoder.md. It does no I/O.
// Alerts are found at any depth; only their direct children are read.
// Events carry everything except Domain, ReceivedTime and Geo, which the
// caller fills. The error is nil or wraps ErrMalformed, ErrDTD or
// ErrTooManyAlerts; on error no Batch is returned.
func Decode(body []byte, opt Options) (*Batch, error) {
	p := getParser(body, opt.withDefaults(), false)
	defer p.release()
	if err := p.run(); err != nil {
		return nil, err
	}
	return p.batch(), nil
}

// DecodeAuth reads only the Authentication of a body (for PEBA's private GET
// endpoints, peba.md §2.2). The whole body must still be well-formed XML
// without a DTD, as PEBA parsed it completely. ok reports that both the
// username and the token element exist.
func DecodeAuth(body []byte) (username, token string, ok bool, err error) {
	p := getParser(body, Options{}.withDefaults(), true)
	defer p.release()
	if err := p.run(); err != nil {
		return "", "", false, err
	}
	return p.username, p.token, p.hasUser && p.hasToken, nil
}

// frame kinds: what an open element means to the decoder.
const (
	kindOther = iota
	kindAlert
	kindChild // direct child of the innermost open Alert
	kindAuth
	kindUser
	kindToken
)

type frame struct {
	name    []byte
	kind    int8
	collect bool // text before the first subelement is collected (ElementTree's .text)
}

// child is one direct child of an Alert as sent: the unit of the event ID.
type child struct {
	name  []byte
	attrs []xattr // a sub-slice of alertState.attrs
	text  []byte
}

type alertState struct {
	index    int
	depth    int
	slot     int // index into parser.events
	children []child
	// attrs holds the attributes of all children. When append moves it,
	// the children keep the old array, which is never written again.
	attrs []xattr
}

type parser struct {
	body     []byte
	opt      Options
	authOnly bool
	s        scanner

	stack    []frame
	rootSeen bool
	authSeen bool
	alerts   []*alertState
	free     []*alertState
	nAlerts  int

	username, token   string
	hasUser, hasToken bool
	authText          []byte

	events  []peba.Event
	digests [][sha256.Size]byte // canonical digest of each events slot's children
	skipped []Skip
	b       builder
}

// parserPool keeps parsers with their buffers (scanner, stack, alert
// children, builder) for the next body: most per-body allocations were the
// growth of these buffers.
var parserPool = sync.Pool{New: func() any { return new(parser) }}

// maxPooledBody: parsers that decoded larger bodies are dropped rather than
// pooled, so that one huge body does not pin its buffers.
const maxPooledBody = 256 << 10

func getParser(body []byte, opt Options, authOnly bool) *parser {
	p := parserPool.Get().(*parser)
	p.body, p.opt, p.authOnly = body, opt, authOnly
	p.s.b, p.s.pos = body, 0
	p.b.init(opt)
	return p
}

// release returns p to the pool. Its buffers are not cleared (that cost
// more than 10% of Decode): they may keep parts of recent bodies and events
// reachable, at most about maxPooledBody per pooled parser, until they are
// overwritten or sync.Pool drops the idle parser at a GC.
func (p *parser) release() {
	if len(p.body) > maxPooledBody {
		return
	}
	p.free = append(p.free, p.alerts...) // left open by an error
	*p = parser{
		events:   p.events[:0],
		digests:  p.digests[:0],
		s:        scanner{attrs: p.s.attrs[:0], buf: p.s.buf[:0]},
		stack:    p.stack[:0],
		alerts:   p.alerts[:0],
		free:     p.free,
		authText: p.authText[:0],
		b:        p.b,
	}
	parserPool.Put(p)
}

func malformed(err error) error {
	return fmt.Errorf("cannot parse EWS XML: %w: %w", ErrMalformed, err)
}

var errDTD = fmt.Errorf("cannot parse EWS XML: %w", ErrDTD)

// run feeds the body's tokens to the parser.
func (p *parser) run() error {
	s := &p.s
	for {
		kind, err := s.next()
		if err != nil {
			return malformed(err)
		}
		switch kind {
		case tokEOF:
			return p.finish()
		case tokStart:
			if err := p.start(s.name, s.attrs); err != nil {
				return err
			}
			if s.empty {
				if err := p.end(s.name); err != nil {
					return err
				}
			}
		case tokEnd:
			if err := p.end(s.name); err != nil {
				return err
			}
		case tokText:
			if err := p.text(s.text); err != nil {
				return err
			}
		case tokDirective:
			return errDTD
		}
	}
}

func (p *parser) finish() error {
	if len(p.stack) != 0 {
		return malformed(errors.New("unexpected end of document"))
	}
	if !p.rootSeen {
		return malformed(errors.New("no root element"))
	}
	return nil
}

// start handles a start tag. attrs are only valid during the call; their
// name and value slices stay valid.
func (p *parser) start(name []byte, attrs []xattr) error {
	depth := len(p.stack) // depth of the parent; root has parent depth 0
	if depth == 0 {
		if p.rootSeen {
			return malformed(errors.New("more than one root element"))
		}
		p.rootSeen = true
	} else {
		// A subelement ends the parent's .text.
		p.stack[depth-1].collect = false
	}
	f := frame{name: name}
	parent := kindOther
	if depth > 0 {
		parent = int(p.stack[depth-1].kind)
	}
	// Names are compared as written: "x:Alert" is not an Alert (namespaces
	// are not resolved, docs/ews-decoder.md "XML").
	switch {
	case string(name) == "Alert" && !p.authOnly:
		p.nAlerts++
		if p.nAlerts > p.opt.MaxAlerts {
			return fmt.Errorf("cannot decode EWS body: %w (limit %d)", ErrTooManyAlerts, p.opt.MaxAlerts)
		}
		f.kind = kindAlert
		p.pushAlert(depth + 1)
	case len(p.alerts) > 0 && p.alerts[len(p.alerts)-1].depth == depth:
		f.kind, f.collect = kindChild, true
		p.alerts[len(p.alerts)-1].addChild(name, attrs)
	case depth == 1 && string(name) == "Authentication" && !p.authSeen:
		p.authSeen = true
		f.kind = kindAuth
	case parent == kindAuth && string(name) == "username" && !p.hasUser:
		p.hasUser = true
		f.kind, f.collect = kindUser, true
		p.authText = p.authText[:0]
	case parent == kindAuth && string(name) == "token" && !p.hasToken:
		p.hasToken = true
		f.kind, f.collect = kindToken, true
		p.authText = p.authText[:0]
	}
	p.stack = append(p.stack, f)
	return nil
}

// addChild appends a child, reusing the text buffer of an earlier alert.
func (a *alertState) addChild(name []byte, attrs []xattr) {
	from := len(a.attrs)
	a.attrs = append(a.attrs, attrs...)
	n := len(a.children)
	if n < cap(a.children) {
		a.children = a.children[:n+1]
	} else {
		a.children = append(a.children, child{})
	}
	c := &a.children[n]
	c.name, c.attrs, c.text = name, a.attrs[from:len(a.attrs):len(a.attrs)], c.text[:0]
}

// text handles character data; t is only valid during the call.
func (p *parser) text(t []byte) error {
	n := len(p.stack)
	if n == 0 {
		if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
			return malformed(errors.New("text outside the root element"))
		}
		return nil
	}
	if !p.stack[n-1].collect {
		return nil
	}
	switch p.stack[n-1].kind {
	case kindChild:
		a := p.alerts[len(p.alerts)-1]
		c := &a.children[len(a.children)-1]
		c.text = append(c.text, t...)
	case kindUser, kindToken:
		p.authText = append(p.authText, t...)
	}
	return nil
}

func (p *parser) end(name []byte) error {
	n := len(p.stack)
	if n == 0 || !bytes.Equal(p.stack[n-1].name, name) {
		return malformed(fmt.Errorf("unexpected end element </%.64q>", name))
	}
	f := p.stack[n-1]
	p.stack = p.stack[:n-1]
	switch f.kind {
	case kindAlert:
		p.finishAlert()
	case kindUser:
		p.username = string(p.authText)
	case kindToken:
		p.token = string(p.authText)
	}
	return nil
}

func (p *parser) pushAlert(depth int) {
	var a *alertState
	if k := len(p.free); k > 0 {
		a, p.free = p.free[k-1], p.free[:k-1]
		a.children, a.attrs = a.children[:0], a.attrs[:0]
	} else {
		a = &alertState{}
	}
	a.index, a.depth = p.nAlerts-1, depth
	// Reserve the slot now so that nested alerts keep start-tag order.
	a.slot = len(p.events)
	p.events = append(p.events, peba.Event{})
	p.digests = append(p.digests, [sha256.Size]byte{})
	p.alerts = append(p.alerts, a)
}

func (p *parser) finishAlert() {
	k := len(p.alerts) - 1
	a := p.alerts[k]
	p.alerts = p.alerts[:k]
	ev, reason := p.b.build(a.children)
	if reason != "" {
		p.skipped = append(p.skipped, Skip{Index: a.index, Reason: "alert " + strconv.Itoa(a.index) + ": " + reason})
	} else {
		ev.ID = "-" // marks the slot as used; the real ID is set in batch
		p.events[a.slot] = ev
		p.digests[a.slot] = p.b.digest(a.children)
	}
	// Child text buffers are reused; names and attribute values point into
	// the body or into slices the scanner allocated for them.
	p.free = append(p.free, a)
}

func (p *parser) batch() *Batch {
	b := &Batch{Username: p.username, Token: p.token, HasAuth: p.hasUser && p.hasToken, Skipped: p.skipped}
	// IDs and Submitter are set here, after the whole body was read, so
	// that they do not depend on where Authentication appears.
	// p.events is the parser's reused scratch: the events are copied out
	// into a slice of the exact size.
	seen := make(map[[sha256.Size]byte]int, len(p.events))
	b.Events = make([]peba.Event, 0, len(p.events)-len(p.skipped))
	for i := range p.events {
		ev := &p.events[i]
		if ev.ID == "" {
			continue
		}
		d := p.digests[i]
		ev.ID, p.b.buf = eventID(p.b.buf, p.username, d, seen[d])
		seen[d]++
		ev.Submitter = p.username
		b.Events = append(b.Events, *ev)
	}
	sort.SliceStable(b.Skipped, func(i, j int) bool { return b.Skipped[i].Index < b.Skipped[j].Index })
	return b
}
