// Package dashboard serves the built-in dashboard: one HTML page and its
// static assets (ES modules, CSS, the world map geometry), embedded in the
// binary. The page reads everything else from the service's existing
// endpoints: the PEBA statistics API (/alert/*), the live feed
// (/api/v1/events/stream) and /auth/me; see docs/dashboard.md.
//
// Assets are served under content-hashed names computed at startup
// (app.<hash>.js) with a one-year immutable Cache-Control; the page itself is
// no-cache and carries a strict Content-Security-Policy (no inline script or
// style, same-origin connections only).
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var embedded embed.FS

// CSP is the page's Content-Security-Policy. Scripts, styles, images and
// connections are same-origin only; nothing inline, no eval, no frames, no
// plugins, no form posts (the sign-in form is handled by script).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Options configure the dashboard.
type Options struct {
	// Path is where the page is served: "/" (the default) or a path such as
	// "/dashboard/" (leading and trailing slash). Assets are served under
	// Path + "assets/".
	Path string
	// GeoTypes returns the database_type of each loaded GeoIP database
	// ("DBIP-City-Lite", "GeoLite2-ASN", ...), for the attribution their
	// licences ask for; nil shows none.
	GeoTypes func() []string
	// Version is shown in the footer.
	Version string
	Logger  *slog.Logger
	// Assets replaces the embedded assets directory (tests); nil uses the
	// embedded one.
	Assets fs.FS
}

// Dashboard serves the page and its assets.
type Dashboard struct {
	opt    Options
	assets *assetSet
	page   *template.Template
	log    *slog.Logger
}

// New loads and hashes the assets. It fails only on a broken asset
// directory (a build problem), never at request time.
func New(opt Options) (*Dashboard, error) {
	if opt.Path == "" {
		opt.Path = "/"
	}
	if err := ValidatePath(opt.Path); err != nil {
		return nil, err
	}
	fsys := opt.Assets
	if fsys == nil {
		sub, err := fs.Sub(embedded, "assets")
		if err != nil {
			return nil, err
		}
		fsys = sub
	}
	set, err := loadAssets(fsys)
	if err != nil {
		return nil, err
	}
	d := &Dashboard{opt: opt, assets: set, log: opt.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.page, err = template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			h, ok := set.hashed[name]
			if !ok {
				return "", fmt.Errorf("no asset %q", name)
			}
			return opt.Path + "assets/" + h, nil
		},
	}).ParseFS(fsys, "index.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard page: %w", err)
	}
	// Render once now so that a template error stops the start, not a request.
	if _, err := d.render(); err != nil {
		return nil, fmt.Errorf("dashboard page: %w", err)
	}
	return d, nil
}

// ValidatePath reports whether p can be the dashboard's path: "/" or
// "/name/" made of letters, digits, '-', '_' and '.' segments.
func ValidatePath(p string) error {
	if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
		return fmt.Errorf("dashboard path %q must start and end with /", p)
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if p == "/" {
			break
		}
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("dashboard path %q has an empty or dot segment", p)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return fmt.Errorf("dashboard path %q: only letters, digits, '-', '_' and '.' are allowed", p)
			}
		}
	}
	return nil
}

// Register mounts GET (and HEAD) of the page and the assets on mux. At "/"
// only the exact path is taken, for GET; PEBA's handler of "/" keeps the
// other methods. Elsewhere, Path without its trailing slash redirects to
// Path.
func (d *Dashboard) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+d.opt.Path+"{$}", d.servePage)
	mux.HandleFunc("GET "+d.opt.Path+"assets/{name}", d.serveAsset)
	// Any other path under assets/ (subdirectories, a bare "assets/") is a
	// plain 404 rather than the page or a PEBA answer.
	mux.HandleFunc(d.opt.Path+"assets/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	if d.opt.Path != "/" {
		mux.Handle("GET "+strings.TrimSuffix(d.opt.Path, "/"), http.RedirectHandler(d.opt.Path, http.StatusMovedPermanently))
	}
}

// pageData is what index.html is rendered with.
type pageData struct {
	Base         string
	Version      string
	Attributions []attribution
}

// attribution is a notice a GeoIP database's licence asks for.
type attribution struct {
	Text, LinkText, URL string
}

// attributions maps the loaded databases to their licence notices: DB-IP
// Lite (CC BY 4.0) asks web pages to link back with exactly this text;
// MaxMind's GeoLite2 EULA asks for its sentence.
func (d *Dashboard) attributions() []attribution {
	if d.opt.GeoTypes == nil {
		return nil
	}
	var dbip, maxmind bool
	for _, t := range d.opt.GeoTypes() {
		l := strings.ToLower(t)
		switch {
		case strings.HasPrefix(l, "dbip") || strings.HasPrefix(l, "db-ip"):
			dbip = true
		case strings.HasPrefix(l, "geolite2") || strings.HasPrefix(l, "geoip2"):
			maxmind = true
		}
	}
	var out []attribution
	if dbip {
		out = append(out, attribution{LinkText: "IP Geolocation by DB-IP", URL: "https://db-ip.com"})
	}
	if maxmind {
		out = append(out, attribution{Text: "This product includes GeoLite2 data created by MaxMind, available from ",
			LinkText: "https://www.maxmind.com", URL: "https://www.maxmind.com"})
	}
	return out
}

func (d *Dashboard) render() ([]byte, error) {
	var b bytes.Buffer
	err := d.page.Execute(&b, pageData{Base: d.opt.Path, Version: d.opt.Version, Attributions: d.attributions()})
	return b.Bytes(), err
}

// securityHeaders are sent with the page and every asset.
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) {
	body, err := d.render()
	if err != nil {
		// New rendered the same template; only a GeoTypes surprise gets here.
		d.log.Error("Cannot render the dashboard", "error", err)
		http.Error(w, "dashboard unavailable", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page names the current asset hashes: browsers must revalidate
	// it (cheap: ETag) so that an upgrade is picked up at once.
	h.Set("Cache-Control", "no-cache")
	sum := sha256.Sum256(body)
	h.Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (d *Dashboard) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := d.assets.byHashed[r.PathValue("name")]
	if !ok {
		// An unknown or outdated hash: 404, never another version's bytes
		// (they would be cached as immutable under this name).
		notFound(w)
		return
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	etag, body := a.etag, a.body
	if a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			// Another representation, so another strong ETag (RFC 9110 8.8.3).
			etag, body = a.etag[:len(a.etag)-1]+`-gzip"`, a.gz
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func notFound(w http.ResponseWriter) {
	securityHeaders(w.Header())
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "404 page not found", http.StatusNotFound)
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (q=0 refuses it).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
