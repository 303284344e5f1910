package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// serve returns a server with the dashboard at path and a stand-in for
// PEBA's handler of "/" (pebaapi registers "/{$}" for every method).
func serve(t *testing.T, opt Options) *httptest.Server {
	t.Helper()
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://sicherheitstacho.eu", http.StatusFound)
	})
	d.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// noRedirect is a client that reports redirects instead of following them
// and sends Accept-Encoding only when a test sets it (no transparent gzip).
var noRedirect = &http.Client{
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// assetRefs are the asset URLs the page names (script, stylesheet, icon,
// and the map geometry in data-world).
var assetRefs = regexp.MustCompile(`(?:src|href|data-world)="(/[^"]*assets/[^"]+)"`)

// servedImport finds the import specifiers of a served (rewritten) module.
var servedImport = regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^;]*?\sfrom\s*"(\./[^"]+)"`)

var hashedName = regexp.MustCompile(`^[a-z]+\.[0-9a-f]{10}\.(js|css|json|svg)$`)

func TestPageHeadersAndCSP(t *testing.T) {
	srv := serve(t, Options{})
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-cache",
		"Content-Security-Policy": CSP,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	for _, d := range []string{"script-src 'self'", "style-src 'self'", "connect-src 'self'", "default-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(CSP, d) {
			t.Errorf("CSP lacks %q", d)
		}
	}
	if strings.Contains(CSP, "unsafe") || strings.Contains(CSP, "http") {
		t.Errorf("CSP allows inline code or other origins: %s", CSP)
	}
	// The CSP forbids inline script and style; the page must not need them.
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>`),
		regexp.MustCompile(`\son[a-z]+\s*=`),
		regexp.MustCompile(`\sstyle\s*=`),
		regexp.MustCompile(`<style`),
	} {
		for _, m := range re.FindAll(body, -1) {
			if re.String() == `<script(?:\s[^>]*)?>` && bytes.Contains(m, []byte(` src="`)) {
				continue
			}
			t.Errorf("inline code in the page: %s", m)
		}
	}
	// ETag revalidation: the unchanged page is a 304.
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the page")
	}
	if resp, _ := get(t, srv.URL+"/", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", resp.StatusCode)
	}
	// HEAD works like GET, without a body.
	req, _ := http.NewRequest("HEAD", srv.URL+"/", nil)
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 || hr.Header.Get("Content-Security-Policy") != CSP {
		t.Errorf("HEAD /: %d %q", hr.StatusCode, hr.Header.Get("Content-Security-Policy"))
	}
}

func TestAssetsAreHashedAndImmutable(t *testing.T) {
	srv := serve(t, Options{})
	_, page := get(t, srv.URL+"/")
	refs := assetRefs.FindAllSubmatch(page, -1)
	if len(refs) != 4 {
		t.Fatalf("page names %d assets, want 4 (icon, css, js, world): %s", len(refs), page)
	}
	seen := map[string]bool{}
	var queue []string
	for _, m := range refs {
		queue = append(queue, string(m[1]))
	}
	// Follow the JS modules' imports too: every module the page loads
	// must be served, under a hashed name.
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if seen[u] {
			continue
		}
		seen[u] = true
		name := u[strings.LastIndex(u, "/")+1:]
		if !hashedName.MatchString(name) {
			t.Errorf("%s: not a content-hashed name", u)
		}
		resp, body := get(t, srv.URL+u)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", u, resp.StatusCode)
			continue
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", u, cc)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", u)
		}
		wantType := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
			".json": "application/json", ".svg": "image/svg+xml"}[name[strings.LastIndex(name, "."):]]
		if ct := resp.Header.Get("Content-Type"); ct != wantType {
			t.Errorf("%s: Content-Type %q, want %q", u, ct, wantType)
		}
		// The name's hash is the hash of the bytes served.
		sum := sha256.Sum256(body)
		if h := hex.EncodeToString(sum[:])[:hashLen]; !strings.Contains(name, "."+h+".") {
			t.Errorf("%s: content hash is %s", u, h)
		}
		if strings.HasSuffix(name, ".js") {
			for _, m := range servedImport.FindAllSubmatch(body, -1) {
				queue = append(queue, u[:strings.LastIndex(u, "/")+1]+strings.TrimPrefix(string(m[1]), "./"))
			}
			if bytes.Contains(body, []byte(`from "./`)) && !regexp.MustCompile(`from "\./[a-z]+\.[0-9a-f]{10}\.js"`).Match(body) {
				t.Errorf("%s: unrewritten import", u)
			}
		}
	}
	for _, mod := range []string{"map", "feed", "charts", "util"} {
		found := false
		for u := range seen {
			found = found || strings.Contains(u, "/"+mod+".")
		}
		if !found {
			t.Errorf("module %s.js is not reachable from the page", mod)
		}
	}
}

func TestAssetGzipAndRevalidation(t *testing.T) {
	srv := serve(t, Options{})
	_, page := get(t, srv.URL+"/")
	var world string
	for _, m := range assetRefs.FindAllSubmatch(page, -1) {
		if strings.Contains(string(m[1]), "/world.") {
			world = string(m[1])
		}
	}
	plainResp, plain := get(t, srv.URL+world)
	if plainResp.Header.Get("Content-Encoding") != "" || plainResp.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("plain: Content-Encoding %q Vary %q", plainResp.Header.Get("Content-Encoding"), plainResp.Header.Get("Vary"))
	}
	resp, gz := get(t, srv.URL+world, "Accept-Encoding", "gzip, deflate, br")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	unz, _ := io.ReadAll(zr)
	if !bytes.Equal(unz, plain) || len(gz) >= len(plain)/2 {
		t.Errorf("gzip: %d bytes for %d, round trip equal: %v", len(gz), len(plain), bytes.Equal(unz, plain))
	}
	if resp, _ := get(t, srv.URL+world, "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still got gzip")
	}
	if resp, _ := get(t, srv.URL+world, "If-None-Match", plainResp.Header.Get("ETag")); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	gzTag := resp.Header.Get("ETag")
	if gzTag == plainResp.Header.Get("ETag") || gzTag == "" {
		t.Errorf("gzip and plain share the ETag %q", gzTag)
	}
	if resp, _ := get(t, srv.URL+world, "If-None-Match", gzTag, "Accept-Encoding", "gzip"); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match (gzip): %d, want 304", resp.StatusCode)
	}
}

func TestNotFound(t *testing.T) {
	srv := serve(t, Options{})
	_, page := get(t, srv.URL+"/")
	app := string(regexp.MustCompile(`/assets/app\.[0-9a-f]{10}\.js`).Find(page))
	for _, p := range []string{
		"/assets/app.js",                       // unhashed name
		"/assets/app.0123456789.js",            // another version's hash
		"/assets/index.html",                   // the template is not an asset
		"/assets/",                             // the directory
		"/assets/sub/app.js",                   // no subdirectories
		"/assets/..%2fdashboard.go",            // traversal
		"/assets/%2e%2e/%2e%2e/etc/passwd",     // traversal
		"/assets/" + app[8:] + "/x",            // below a file
		"/index.html",                          // the page has one path
		"/assets/world.json.gz",                // only what was embedded
		strings.Replace(app, ".js", ".css", 1), // hash of another file type
	} {
		resp, body := get(t, srv.URL+p)
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
		if resp.Header.Get("Cache-Control") == "public, max-age=31536000, immutable" || bytes.Contains(body, []byte("<html")) {
			t.Errorf("%s: a 404 must not be cached as immutable or be the page", p)
		}
	}
	// Methods other than GET/HEAD are not served by the dashboard.
	resp, err := http.Post(srv.URL+app, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Errorf("POST %s: 200", app)
	}
}

// TestRootAndPEBARedirect: at "/" the dashboard takes GET and HEAD of the
// exact path only; PEBA's handler keeps the other methods. At another path
// "/" stays PEBA's redirect, which is how an operator keeps it.
func TestRootAndPEBARedirect(t *testing.T) {
	srv := serve(t, Options{})
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("<title>peba")) {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("OPTIONS", srv.URL+"/", nil)
	r2, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusFound {
		t.Errorf("OPTIONS /: %d, want PEBA's handler (302 in this stand-in)", r2.StatusCode)
	}

	srv = serve(t, Options{Path: "/dashboard/"})
	resp, _ = get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://sicherheitstacho.eu" {
		t.Errorf("GET / with the dashboard elsewhere: %d %q, want PEBA's redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = get(t, srv.URL+"/dashboard/")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != CSP {
		t.Fatalf("GET /dashboard/: %d", resp.StatusCode)
	}
	refs := assetRefs.FindAllSubmatch(body, -1)
	if len(refs) == 0 {
		t.Fatal("no assets named")
	}
	for _, m := range refs {
		if !strings.HasPrefix(string(m[1]), "/dashboard/assets/") {
			t.Errorf("asset %s not under the dashboard's path", m[1])
		}
		if resp, _ := get(t, srv.URL+string(m[1])); resp.StatusCode != 200 {
			t.Errorf("%s: %d", m[1], resp.StatusCode)
		}
	}
	resp, _ = get(t, srv.URL+"/dashboard")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/dashboard/" {
		t.Errorf("GET /dashboard: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, srv.URL+"/assets/"+string(refs[0][1])[len("/dashboard/assets/"):]); resp.StatusCode == 200 {
		t.Error("assets also served at the root")
	}
}

func TestValidatePath(t *testing.T) {
	for _, p := range []string{"/", "/dashboard/", "/ops/map-1/", "/a.b_c/"} {
		if err := ValidatePath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", "dashboard/", "/dashboard", "//", "/a//b/", "/../", "/a b/", "/a{x}/", "/ä/"} {
		if err := ValidatePath(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	if _, err := New(Options{Path: "/x"}); err == nil {
		t.Error("New accepted a path without a trailing slash")
	}
}

func TestGeoIPAttribution(t *testing.T) {
	cases := []struct {
		types        []string
		dbip, maxmnd bool
	}{
		{nil, false, false},
		{[]string{"DBIP-City-Lite", "DBIP-ASN-Lite (compat=GeoLite2-ASN)"}, true, false},
		{[]string{"GeoLite2-City", "GeoLite2-ASN"}, false, true},
		{[]string{"DBIP-City-Lite", "GeoLite2-ASN"}, true, true},
	}
	for _, c := range cases {
		types := c.types
		srv := serve(t, Options{GeoTypes: func() []string { return types }})
		_, body := get(t, srv.URL+"/")
		dbip := bytes.Contains(body, []byte(`<a href="https://db-ip.com">IP Geolocation by DB-IP</a>`))
		mm := bytes.Contains(body, []byte("This product includes GeoLite2 data created by MaxMind"))
		if dbip != c.dbip || mm != c.maxmnd {
			t.Errorf("%v: DB-IP link %v (want %v), MaxMind notice %v (want %v)", c.types, dbip, c.dbip, mm, c.maxmnd)
		}
	}
}

// TestHashFollowsImports: a change in an imported module changes the
// importing module's URL too, so a cached old entry module can never load
// a new dependency (or the reverse).
func TestHashFollowsImports(t *testing.T) {
	files := func(dep string) fstest.MapFS {
		return fstest.MapFS{
			"index.html": {Data: []byte(`<script type="module" src="{{asset "app.js"}}"></script>`)},
			"app.js":     {Data: []byte("import { x } from \"./dep.js\";\nconsole.log(x);\n")},
			"dep.js":     {Data: []byte(dep)},
		}
	}
	a, err := loadAssets(files("export const x = 1;\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadAssets(files("export const x = 2;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.hashed["app.js"] == b.hashed["app.js"] || a.hashed["dep.js"] == b.hashed["dep.js"] {
		t.Errorf("hashes did not change: %v %v", a.hashed, b.hashed)
	}
	app := a.byHashed[a.hashed["app.js"]].body
	if !bytes.Contains(app, []byte(`from "./`+a.hashed["dep.js"]+`"`)) {
		t.Errorf("import not rewritten: %s", app)
	}

	cyc := fstest.MapFS{
		"a.js": {Data: []byte("import \"./b.js\";\nexport * from \"./b.js\";\n")},
		"b.js": {Data: []byte("export * from \"./a.js\";\n")},
	}
	if _, err := loadAssets(cyc); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("import cycle: %v", err)
	}
	missing := fstest.MapFS{"a.js": {Data: []byte("import { y } from \"./nope.js\";\n")}}
	if _, err := loadAssets(missing); err == nil {
		t.Error("import of a missing module accepted")
	}
	if _, err := loadAssets(fstest.MapFS{"x.exe": {Data: []byte("MZ")}}); err == nil {
		t.Error("unknown file type accepted")
	}
}
