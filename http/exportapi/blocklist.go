package exportapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peba-go/peba"
)

// blocklistParams are the parameters /api/v1/blocklist accepts; any other
// is a 400 (a misspelt min_count must not silently give a longer list).
var blocklistParams = []string{"format", "window", "min_count", "type", "domain", "global_only", "limit"}

// blocklistMaxAge is the Cache-Control max-age of blocklists: firewalls
// poll them, and a minute-old list is as good as a fresh one.
const blocklistMaxAge = 60

// blocklist serves GET /api/v1/blocklist[.ext]; ext is the format the path
// names ("" for the bare path: the format parameter, default txt).
//
// Ordering (docs/api.md): csv and json list addresses by event count
// descending, then by address ascending (numerically, IPv4 before IPv6);
// txt lists the same addresses sorted by address only, so that the lists of
// two runs differ by few lines. A limit keeps the most frequent addresses,
// ties broken by address, whatever the format.
func (a *API) blocklist(ext string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := a.identify(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		p := &params{q: r.URL.Query()}
		p.only(blocklistParams)
		format := p.get("format")
		switch {
		case format == "":
			format = ext
			if format == "" {
				format = "txt"
			}
		case format != "txt" && format != "csv" && format != "json":
			p.fail("format", "must be txt, csv or json")
		case ext != "" && format != ext:
			p.fail("format", "is "+format+" but the path asks for ."+ext)
		}
		window := p.window("window", 24*time.Hour, a.opt.MaxWindow)
		minCount := p.intIn("min_count", 1, 1, math.MaxInt32)
		ptype := p.text("type")
		global := p.boolean("global_only", true)
		limit := int(p.intIn("limit", MaxBlocklist, 1, MaxBlocklist))
		domain := p.get("domain")
		if p.err != nil {
			a.fail(w, r, p.err)
			return
		}
		ds, err := c.domains(domain)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		// render computes the answer: a first line "<count> <truncated>"
		// for the headers, then the body (the form it is cached in).
		render := func(ctx context.Context) ([]byte, error) {
			now := a.now().UTC()
			win := peba.Window{Domains: ds, Field: peba.Received, From: now.Add(-window), To: now, PeerType: ptype}
			// One more than the limit tells whether the list was cut.
			srcs, err := a.opt.Sources.Sources(ctx, win, peba.SourceQuery{MinCount: minCount, GlobalOnly: global, Limit: limit + 1})
			if err != nil {
				return nil, err
			}
			truncated := len(srcs) > limit
			if truncated {
				srcs = srcs[:limit]
			}
			head := []byte(strconv.Itoa(len(srcs)) + " " + strconv.FormatBool(truncated) + "\n")
			switch format {
			case "txt":
				return blocklistText(head, srcs), nil
			case "csv":
				return blocklistCSV(head, srcs), nil
			}
			return blocklistJSON(head, srcs, win, window, minCount, global, truncated, domainName(ds)), nil
		}
		var res []byte
		if a.loader == nil {
			res, err = render(r.Context())
		} else {
			// The key names the answer, not the caller: callers who may
			// see the same domains share it.
			key := fmt.Sprintf("%s|%s|%d|%q|%t|%d|%s", format, window, minCount, ptype, global, limit, domainName(ds))
			sum := sha256.Sum256([]byte(key))
			res, err = a.loader.Load(r.Context(), "exportapi:blocklist:"+hex.EncodeToString(sum[:]), func(ctx context.Context) ([]byte, time.Duration, error) {
				b, err := render(ctx)
				return b, BlocklistCacheTTL, err
			})
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		head, body, _ := bytes.Cut(res, []byte("\n"))
		count, truncated, _ := strings.Cut(string(head), " ")
		h := w.Header()
		h.Set("Content-Type", blocklistTypes[format])
		h.Set("X-Blocklist-Count", count)
		h.Set("X-Blocklist-Truncated", truncated)
		writeCacheable(w, r, c, body, blocklistMaxAge)
	}
}

// blocklistTypes are the content types of the formats.
var blocklistTypes = map[string]string{
	"txt":  "text/plain; charset=utf-8",
	"csv":  "text/csv; charset=utf-8",
	"json": "application/json",
}

// BlocklistCacheTTL is how long a computed blocklist is served from the
// response cache (Options.Cache). Firewalls poll the same URL; one query
// per TTL answers all of them, and the cache's refresh-ahead keeps a
// steadily polled list from ever being computed on a request.
const BlocklistCacheTTL = 30 * time.Second

// only fails on any parameter not in names.
func (p *params) only(names []string) {
	for _, k := range slices.Sorted(maps.Keys(p.q)) {
		if !slices.Contains(names, k) {
			p.fail(k, "unknown parameter (accepted: "+strings.Join(names, ", ")+")")
		}
	}
}

// domainName names a domain set as the domain parameter does.
func domainName(ds []peba.Domain) string {
	switch {
	case len(ds) == 2:
		return "all"
	case len(ds) == 1 && ds[0] == peba.DomainPrivate:
		return "private"
	}
	return "community"
}

// blocklistText is one address per line, in address order, nothing else:
// what iptables/ipset/nftables loaders and `ipset restore` scripts read
// line by line (no comments, no header, no blank lines).
func blocklistText(b []byte, srcs []peba.Source) []byte {
	// Sorting 4-byte IPv4 addresses as integers is several times cheaper
	// than moving whole Sources (this list is the one firewalls poll).
	v4 := make([]uint32, 0, len(srcs))
	var others []netip.Addr
	for _, s := range srcs {
		if s.Addr.Is4() {
			a := s.Addr.As4()
			v4 = append(v4, binary.BigEndian.Uint32(a[:]))
		} else {
			others = append(others, s.Addr)
		}
	}
	slices.Sort(v4)
	slices.SortFunc(others, netip.Addr.Compare)
	b = slices.Grow(b, 16*len(srcs))
	var a [4]byte
	for _, v := range v4 {
		binary.BigEndian.PutUint32(a[:], v)
		b = netip.AddrFrom4(a).AppendTo(b)
		b = append(b, '\n')
	}
	for _, addr := range others {
		b = addr.AppendTo(b)
		b = append(b, '\n')
	}
	return b
}

// timeFormat is the time format of csv and json: RFC 3339, UTC, whole
// seconds (blocklists need no more).
const timeFormat = "2006-01-02T15:04:05Z"

// blocklistCSV writes RFC 4180 CSV by hand: no field can need quoting
// (addresses, integers, fixed-format times), and appending is several
// times cheaper than encoding/csv's per-row []string.
func blocklistCSV(b []byte, srcs []peba.Source) []byte {
	b = slices.Grow(b, 64*(len(srcs)+1))
	b = append(b, "ip,count,first_seen,last_seen\n"...)
	for _, s := range srcs {
		b = s.Addr.AppendTo(b)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.Count, 10)
		b = append(b, ',')
		b = s.First.UTC().AppendFormat(b, timeFormat)
		b = append(b, ',')
		b = s.Last.UTC().AppendFormat(b, timeFormat)
		b = append(b, '\n')
	}
	return b
}

// blocklistDoc is the JSON blocklist. Field order is the wire order.
type blocklistDoc struct {
	From       string         `json:"from"`
	To         string         `json:"to"`
	Window     string         `json:"window"`
	Domain     string         `json:"domain"`
	Type       string         `json:"type"`
	MinCount   int64          `json:"min_count"`
	GlobalOnly bool           `json:"global_only"`
	Count      int            `json:"count"`
	Truncated  bool           `json:"truncated"`
	Sources    []sourceRecord `json:"sources"`
}

type sourceRecord struct {
	IP        string `json:"ip"`
	Count     int64  `json:"count"`
	FirstSeen string `json:"first_seen"`
	LastSeen  string `json:"last_seen"`
}

func blocklistJSON(b []byte, srcs []peba.Source, w peba.Window, window time.Duration, minCount int64, global, truncated bool, domain string) []byte {
	doc := blocklistDoc{
		From: w.From.UTC().Format(time.RFC3339Nano), To: w.To.UTC().Format(time.RFC3339Nano),
		Window: formatWindow(window), Domain: domain, Type: w.PeerType, MinCount: minCount, GlobalOnly: global,
		Count: len(srcs), Truncated: truncated, Sources: []sourceRecord{},
	}
	head, _ := json.Marshal(doc) // cannot fail: strings, numbers, booleans
	// The sources are appended by hand: encoding/json's reflection per
	// field costs more than the query for a long list. Their fields never
	// need escaping (addresses, integers, fixed-format times); the shape
	// is sourceRecord's (TestBlocklistJSON decodes it).
	head = bytes.TrimSuffix(head, []byte("[]}"))
	b = slices.Grow(b, len(head)+100*len(srcs)+3)
	b = append(b, head...)
	b = append(b, '[')
	for i, s := range srcs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ip":"`...)
		b = s.Addr.AppendTo(b)
		b = append(b, `","count":`...)
		b = strconv.AppendInt(b, s.Count, 10)
		b = append(b, `,"first_seen":"`...)
		b = s.First.UTC().AppendFormat(b, timeFormat)
		b = append(b, `","last_seen":"`...)
		b = s.Last.UTC().AppendFormat(b, timeFormat)
		b = append(b, `"}`...)
	}
	return append(b, "]}\n"...)
}

// writeCacheable writes a complete body with Cache-Control (public for
// anonymous callers, private otherwise), Vary: Authorization and a strong
// ETag over the bytes; If-None-Match with that ETag gets 304.
func writeCacheable(w http.ResponseWriter, r *http.Request, c caller, body []byte, maxAge int) {
	h := w.Header()
	scope := "public"
	if c.authenticated {
		scope = "private"
	}
	h.Set("Cache-Control", scope+", max-age="+strconv.Itoa(maxAge))
	h.Add("Vary", "Authorization")
	f := fnv.New64a()
	f.Write(body)
	etag := `"` + strconv.FormatUint(f.Sum64(), 16) + `"`
	h.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// etagMatch reports whether an If-None-Match header lists etag (weak
// comparison, RFC 9110 §13.1.2) or is "*".
func etagMatch(header, etag string) bool {
	for v := range strings.SplitSeq(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}
