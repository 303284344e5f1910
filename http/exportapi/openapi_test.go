package exportapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The document is valid JSON with OpenAPI 3.1's required top-level fields,
// describes every route this package registers (and the live feed's SSE
// stream) with its method, describes nothing else under /api/v1, and
// every $ref in it resolves.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info == nil || info["title"] == "" || info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs title and version: %v", info)
	}
	paths, _ := doc["paths"].(map[string]any)
	if paths == nil {
		t.Fatal("no paths")
	}
	want := map[string]bool{"get /api/v1/events/stream": true} // http/livefeed
	for _, r := range routes {
		want[strings.ToLower(r.method)+" "+r.path] = true
	}
	for mp := range want {
		method, path, _ := strings.Cut(mp, " ")
		item, _ := paths[path].(map[string]any)
		op, _ := item[method].(map[string]any)
		if op == nil {
			t.Errorf("route %s %s is not in the OpenAPI document", strings.ToUpper(method), path)
			continue
		}
		if resp, _ := op["responses"].(map[string]any); resp["200"] == nil {
			t.Errorf("%s %s: no 200 response", method, path)
		}
	}
	for path, item := range paths {
		for method := range item.(map[string]any) {
			if !want[method+" "+path] {
				t.Errorf("the document describes %s %s, which is not registered", method, path)
			}
		}
	}
	// Every $ref points into the document.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if !resolves(doc, ref) {
					t.Errorf("$ref %q does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

func resolves(doc map[string]any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = doc
	for _, seg := range strings.Split(p, "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[seg]; !ok {
			return false
		}
	}
	return true
}

// The document is served as is; unknown /api/v1 paths get a JSON 404.
func TestOpenAPIServed(t *testing.T) {
	mux := http.NewServeMux()
	New(Options{}).Register(mux)
	// The live feed's route coexists with the catch-all.
	mux.HandleFunc("GET /api/v1/events/stream", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s := &server{Server: srv}
	r := s.get(t, anonymous, "/api/v1/openapi.json")
	r.wantStatus(t, "openapi", http.StatusOK)
	if r.body != string(OpenAPI()) || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("served document differs (Content-Type %q)", r.header.Get("Content-Type"))
	}
	s.get(t, anonymous, "/api/v1/nope").wantStatus(t, "unknown path", http.StatusNotFound, "/api/v1/nope")
	if r := s.get(t, anonymous, "/api/v1/events/stream"); r.status != 299 {
		t.Errorf("stream route shadowed: %d", r.status)
	}
}
