package exportapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peba-go/peba"
)

// searchIDs runs a search and returns the event ids and the next cursor.
func searchIDs(t *testing.T, s *server, authz, query string) ([]string, string) {
	t.Helper()
	r := s.get(t, authz, "/api/v1/events?"+query)
	r.wantStatus(t, query, http.StatusOK)
	var res struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(r.body), &res); err != nil {
		t.Fatalf("%s: %v in %s", query, err, r.body)
	}
	if res.Events == nil {
		t.Fatalf("%s: events is not an array: %s", query, r.body)
	}
	ids := []string{}
	for _, e := range res.Events {
		ids = append(ids, e.ID)
	}
	return ids, res.NextCursor
}

// Search results for each filter, newest first, ties by id (c08/c09 and
// p02/p05 share a receive time). Counted from fixtureEvents.
func TestEventSearchFilters(t *testing.T) {
	s := fixtureServer(t)
	comm24h := []string{"c08", "c09", "c01", "c04", "c02", "c03", "c05", "c10"}
	for _, c := range []struct {
		name, authz, query string
		want               []string
	}{
		{"default: community, 24h", anonymous, "", comm24h},
		{"alice default is community", alice, "", comm24h},
		{"alice all", alice, "domain=all", append([]string{"p01", "p02", "p05", "p03", "p04"}, comm24h...)},
		{"alice private", alice, "domain=private", []string{"p01", "p02", "p05", "p03", "p04"}},
		{"ip", anonymous, "ip=1.2.3.4", []string{"c01", "c02", "c03"}},
		{"ip mapped", anonymous, "ip=" + url.QueryEscape("::ffff:1.2.3.4"), []string{"c01", "c02", "c03"}},
		{"ip both domains", alice, "ip=1.2.3.4&domain=all", []string{"p05", "c01", "c02", "c03"}},
		{"ipv6", anonymous, "ip=2a00:1450:0::1", []string{"c10"}},
		{"type", anonymous, "type=" + url.QueryEscape(dionaea), []string{"c04", "c05"}},
		{"sensor hostname", alice, "sensor=tpot-berlin", []string{"c01", "c02"}},
		{"sensor hostname, 3 days", alice, "sensor=tpot-berlin&from=2026-11-17T14:00:00Z", []string{"c01", "c02", "c06", "c07"}},
		{"sensor uuid", alice, "sensor=uuid-tpot-paris", []string{"c08", "c09", "c04", "c03", "c05", "c10"}},
		{"sensor peer ident", alice, "sensor=cowrie-01", []string{"c01", "c02"}},
		// Anonymous callers do not see hostnames or UUIDs, and cannot
		// probe for them: their sensor filter matches the peer ident only.
		{"anonymous sensor hostname", anonymous, "sensor=tpot-berlin", []string{}},
		{"anonymous sensor uuid", anonymous, "sensor=uuid-tpot-paris", []string{}},
		{"anonymous sensor peer ident", anonymous, "sensor=cowrie-01", []string{"c01", "c02"}},
		{"carol sensor hostname", carol, "sensor=tpot-berlin", []string{}},
		{"from to", anonymous, "from=2026-11-20T13:00:00Z&to=2026-11-20T13:50:00Z", []string{"c04", "c02"}},
		{"from with zone", anonymous, "from=2026-11-20T14:30:00%2B01:00&to=2026-11-20T14:00:00Z", []string{"c08", "c09", "c01", "c04"}},
		{"9 days", anonymous, "from=2026-11-11T14:00:00Z&type=Webpage", []string{"c08", "c09", "c10", "c11"}},
		{"to only: the 24h before it, from inclusive", anonymous, "to=2026-11-19T14:00:00Z", []string{"c06", "c07"}},
		{"limit", anonymous, "limit=2", []string{"c08", "c09"}},
	} {
		got, _ := searchIDs(t, s, c.authz, c.query)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: ids %q, want %q", c.name, got, c.want)
		}
	}
}

// Following next_cursor returns every event exactly once, in the order of
// one big page, with ties on the receive time across page boundaries; the
// last page has no cursor, even when it is full.
func TestEventSearchPaging(t *testing.T) {
	s := fixtureServer(t)
	for _, c := range []struct {
		authz, query string
		limit        int
	}{
		{anonymous, "", 3},
		{anonymous, "", 4}, // 8 events: the second page is full and last
		{anonymous, "", 1},
		{alice, "domain=all", 2},
		{alice, "domain=all&from=2026-11-01T00:00:00Z", 3},
		{alice, "domain=all&ip=1.2.3.4", 1},
	} {
		all, cur := searchIDs(t, s, c.authz, c.query+"&limit=1000")
		if cur != "" {
			t.Fatalf("%s: one big page has a next cursor", c.query)
		}
		var paged []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > len(all) {
				t.Fatalf("%s: paging does not end", c.query)
			}
			q := fmt.Sprintf("%s&limit=%d", c.query, c.limit)
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			ids, next := searchIDs(t, s, c.authz, q)
			if len(ids) > c.limit || (next != "" && len(ids) != c.limit) {
				t.Fatalf("%s: page of %d with cursor %q", q, len(ids), next)
			}
			paged = append(paged, ids...)
			if next == "" {
				break
			}
			cursor = next
		}
		if !reflect.DeepEqual(paged, all) {
			t.Errorf("%s limit %d: paged %q, want %q", c.query, c.limit, paged, all)
		}
		seen := map[string]bool{}
		for _, id := range paged {
			if seen[id] {
				t.Errorf("%s: %s twice", c.query, id)
			}
			seen[id] = true
		}
	}
}

// The public view is the live feed's anonymous rule; entitled users get
// every field. Both shapes are fixed: golden for one event each.
func TestEventViews(t *testing.T) {
	s := fixtureServer(t)
	public := `{"id":"c10","origin":"ews","received_time":"2026-11-20T02:00:00.000000Z","create_time":"2026-11-20T01:59:59.000000Z",` +
		`"peer_type":"Webpage","peer_ident":"dionaea-07","src_ip":"2a00:1450::1","src_port":null,"dst_port":null,"transport":"tcp",` +
		`"url":"/x?id=c10","vuln_id":"","client_version":"","payload_md5":"",` +
		`"src":{"country":"DE","country_name":"Germany","asn":"AS3320 Deutsche Telekom AG","lat":51.3,"lon":9.5},` +
		`"dst":{"country":"FR","country_name":"France","lat":48.86,"lon":2.34}}`
	full := `{"id":"c10","domain":"community","origin":"ews","submitter":"community-01-user",` +
		`"received_time":"2026-11-20T02:00:00.000000Z","create_time":"2026-11-20T01:59:59.000000Z",` +
		`"peer_type":"Webpage","peer_ident":"dionaea-07","hostname":"tpot-paris","sensor_uuid":"uuid-tpot-paris",` +
		`"external_ip":"81.2.0.2","internal_ip":"172.20.0.2","src_ip":"2a00:1450::1","src_port":null,"dst_ip":"81.2.0.2","dst_port":null,` +
		`"transport":"tcp","url":"/x?id=c10","vuln_id":"","username":"root","password":"hunter2","login":"Fail","client_version":"",` +
		`"session_start":"","session_end":"","raw_http":"GET / HTTP/1.1\r\nHost: 81.2.0.2\r\n\r\n","payload_md5":"",` +
		`"src":{"country":"DE","country_name":"Germany","asn":"AS3320 Deutsche Telekom AG","lat":51.3,"lon":9.5},` +
		`"dst":{"country":"FR","country_name":"France","asn":"AS3215 Orange","lat":48.86,"lon":2.34},` +
		`"additional_data":[{"k":"hostIP","v":"81.2.0.2"}],"fields":[],"requests":[]}`
	for _, c := range []struct {
		name, authz, want string
	}{
		{"anonymous", anonymous, public},
		{"community credentials", community, public},
		{"carol (community-only)", carol, public},
		{"alice", alice, full},
	} {
		r := s.get(t, c.authz, "/api/v1/events?ip=2a00:1450::1")
		r.wantStatus(t, c.name, http.StatusOK)
		var res struct{ Events []json.RawMessage }
		if err := json.Unmarshal([]byte(r.body), &res); err != nil || len(res.Events) != 1 {
			t.Fatalf("%s: %v %s", c.name, err, r.body)
		}
		if string(res.Events[0]) != c.want {
			t.Errorf("%s: event\n%s\nwant\n%s", c.name, res.Events[0], c.want)
		}
	}
	// Nothing of the sensors' identity or the credentials anywhere in an
	// anonymous answer, over every event of the window.
	r := s.get(t, anonymous, "/api/v1/events?from=2026-11-01T00:00:00Z&limit=1000")
	for _, secret := range []string{"hunter2", "root", "tpot-", "uuid-", "81.2.0.", "172.20.0.2", "hostIP", "10.9.8.7", "8.8.4.4", "private-sensor", "\"domain\""} {
		if strings.Contains(r.body, secret) {
			t.Errorf("anonymous answer contains %q", secret)
		}
	}
}

func TestEventSearchBadParameters(t *testing.T) {
	s := fixtureServer(t)
	cursorOf := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct{ query, param string }{
		{"ip=notanip", "ip"},
		{"ip=1.2.3.0/24", "ip"},
		{"from=yesterday", "from"},
		{"to=2026-13-01T00:00:00Z", "to"},
		{"from=2026-11-20T14:00:00Z&to=2026-11-20T14:00:00Z", "from"},
		{"from=2026-11-21T00:00:00Z", "from"},
		{"from=2025-01-01T00:00:00Z", "from"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"cursor=!!!", "cursor"},
		{"cursor=" + cursorOf("no-colon"), "cursor"},
		{"cursor=" + cursorOf("abc:c01"), "cursor"},
		{"cursor=" + cursorOf("123:"), "cursor"},
		{"cursor=" + strings.Repeat("A", 2000), "cursor"},
		{"sensor=" + strings.Repeat("s", 257), "sensor"},
		{"domain=both", "domain"},
		{"page=2", "page"},
		{"window=24h", "window"},
		{"ip=1.2.3.4&ip=5.6.7.8", "ip"},
	} {
		s.get(t, anonymous, "/api/v1/events?"+c.query).wantStatus(t, c.query, http.StatusBadRequest, c.param)
		if c.param != "limit" && c.param != "cursor" {
			s.get(t, anonymous, "/api/v1/events/export?"+c.query).wantStatus(t, "export "+c.query, http.StatusBadRequest, c.param)
		}
	}
	s.get(t, anonymous, "/api/v1/events/export?limit=5").wantStatus(t, "export limit", http.StatusBadRequest, "limit")
	for _, path := range []string{"/api/v1/events?domain=private", "/api/v1/events/export?domain=all"} {
		s.get(t, anonymous, path).wantStatus(t, path, http.StatusUnauthorized)
		s.get(t, carol, path).wantStatus(t, path, http.StatusForbidden)
		s.get(t, "Bearer carol:wrong", "/api/v1/events").wantStatus(t, path, http.StatusUnauthorized)
	}
}

// readNDJSON reads an export: the ids of its lines, and the error that
// ended the body (nil at a clean end).
func readNDJSON(t *testing.T, body io.Reader) ([]string, []json.RawMessage, error) {
	t.Helper()
	var ids []string
	var lines []json.RawMessage
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ID == "" {
			t.Fatalf("line %d is not an event: %q", len(ids)+1, sc.Text())
		}
		ids = append(ids, e.ID)
		lines = append(lines, slices.Clone(sc.Bytes()))
	}
	return ids, lines, sc.Err()
}

// The export gives exactly the events of one big search page, in its
// order and shape, one per line.
func TestExportMatchesSearch(t *testing.T) {
	s := fixtureServer(t)
	for _, c := range []struct{ authz, query string }{
		{anonymous, ""},
		{alice, "domain=all"},
		{alice, "domain=all&from=2026-11-01T00:00:00Z"},
		{anonymous, "ip=1.2.3.4&from=2026-11-01T00:00:00Z"},
		{carol, "sensor=cowrie-01&from=2026-11-01T00:00:00Z"},
		{anonymous, "type=nope"},
	} {
		r := s.get(t, c.authz, "/api/v1/events?limit=1000&"+c.query)
		var res struct{ Events []json.RawMessage }
		if err := json.Unmarshal([]byte(r.body), &res); err != nil {
			t.Fatal(err)
		}
		e := s.get(t, c.authz, "/api/v1/events/export?"+c.query)
		e.wantStatus(t, c.query, http.StatusOK)
		if ct := e.header.Get("Content-Type"); ct != "application/x-ndjson" {
			t.Errorf("Content-Type %q", ct)
		}
		_, lines, err := readNDJSON(t, strings.NewReader(e.body))
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != len(res.Events) {
			t.Fatalf("%s: export has %d lines, search %d events", c.query, len(lines), len(res.Events))
		}
		for i := range lines {
			if string(lines[i]) != string(res.Events[i]) {
				t.Errorf("%s: line %d\n%s\nwant\n%s", c.query, i, lines[i], res.Events[i])
			}
		}
	}
}

// manyEvents returns n community events in the hour before now, in groups
// of 7 sharing a receive time, with ids not in time order.
func manyEvents(n int) []peba.Event {
	evs := make([]peba.Event, n)
	for i := range n {
		e := mkEvent(fixEvent{id: fmt.Sprintf("m%05d", (i*7919)%n), d: peba.DomainCommunity, age: time.Duration(i/7+1) * time.Millisecond, ptype: cowrie, src: "1.2.3.4"})
		evs[i] = e
	}
	return evs
}

// gatedFinder is the real store with a hook before each FindEvents call
// after the first: to hold the export between pages, or to fail it.
type gatedFinder struct {
	EventFinder
	calls  atomic.Int32
	before func(call int32) error
}

func (g *gatedFinder) FindEvents(ctx context.Context, f peba.EventFilter) ([]peba.Event, int64, error) {
	if n := g.calls.Add(1); n > 1 {
		if err := g.before(n); err != nil {
			return nil, 0, err
		}
	}
	return g.EventFinder.FindEvents(ctx, f)
}

// An export of several pages streams: the first page reaches the client
// while the second has not been read; every event comes exactly once.
func TestExportStreamsPages(t *testing.T) {
	const n = 2*exportPage + 345
	st := newStore(t, manyEvents(n))
	release := make(chan struct{})
	g := &gatedFinder{EventFinder: st, before: func(call int32) error {
		if call == 2 {
			<-release
		}
		return nil
	}}
	s := newServer(t, st, g)
	resp, err := http.Get(s.URL + "/api/v1/events/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
		t.Fatalf("status %d, content length %d (want a streamed 200)", resp.StatusCode, resp.ContentLength)
	}
	br := bufio.NewReader(resp.Body)
	firstPage := make(chan error, 1)
	go func() {
		for range exportPage {
			if _, err := br.ReadBytes('\n'); err != nil {
				firstPage <- err
				return
			}
		}
		firstPage <- nil
	}()
	select {
	case err := <-firstPage:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("the first page did not arrive before the second was read: not flushed")
	}
	close(release)
	rest, _, err := readNDJSON(t, br)
	if err != nil {
		t.Fatal(err)
	}
	if got := exportPage + len(rest); got != n {
		t.Fatalf("exported %d events, want %d", got, n)
	}
	// All ids, once each, against one direct listing of the store.
	all, _, err := st.FindEvents(context.Background(), peba.EventFilter{Domains: []peba.Domain{peba.DomainCommunity}, Since: now.Add(-24 * time.Hour), Until: now})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(all))
	for i, e := range all {
		want[i] = e.ID
	}
	if !reflect.DeepEqual(rest, want[exportPage:]) {
		t.Error("events after the first page differ from the store's listing")
	}
	if calls := g.calls.Load(); calls != 3 {
		t.Errorf("%d FindEvents calls, want 3 pages", calls)
	}
}

// A store failure after the first page aborts the response: the client
// gets a read error, not a short export that looks complete.
func TestExportAbortsOnStoreFailure(t *testing.T) {
	st := newStore(t, manyEvents(exportPage+10))
	g := &gatedFinder{EventFinder: st, before: func(int32) error { return errors.New("disk on fire") }}
	s := newServer(t, st, g)
	resp, err := http.Get(s.URL + "/api/v1/events/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ids, _, err := readNDJSON(t, resp.Body)
	if err == nil {
		t.Fatalf("export of %d events ended cleanly after a store failure", len(ids))
	}
	if len(ids) != exportPage {
		t.Errorf("%d events before the failure, want %d", len(ids), exportPage)
	}
	// A failure before the first byte is a proper 503.
	st.Close()
	s.get(t, anonymous, "/api/v1/events/export").wantStatus(t, "store closed", http.StatusServiceUnavailable)
	s.get(t, anonymous, "/api/v1/events").wantStatus(t, "store closed", http.StatusServiceUnavailable)
}

// The event JSON keeps addresses canonical.
func TestEventJSONAddresses(t *testing.T) {
	e := mkEvent(fixtureEvents[0])
	e.SrcIP = netip.Addr{}
	var v map[string]any
	if err := json.Unmarshal(eventJSON(&e, false), &v); err != nil {
		t.Fatal(err)
	}
	if v["src_ip"] != "" || v["src_port"] != float64(40000) {
		t.Errorf("src_ip %v src_port %v", v["src_ip"], v["src_port"])
	}
}
