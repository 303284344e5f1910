package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

// hashLen is the length of the content hash in asset names (hex digits):
// 40 bits, so a collision between two versions of one file is negligible.
const hashLen = 10

// asset is one embedded file as served.
type asset struct {
	name        string // hashed name, e.g. "app.3f2a1b9c04.js"
	contentType string
	body        []byte
	gz          []byte // gzip-compressed body, nil when that does not pay
	etag        string // strong ETag: the content hash
}

// contentTypes lists the extensions the dashboard ships. Set explicitly
// instead of from the system's MIME tables, which differ between hosts
// (a module script served as text/plain is refused by browsers).
var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".json": "application/json",
	".svg":  "image/svg+xml",
	".html": "text/html; charset=utf-8",
}

// importRe finds the relative module specifiers of static imports and
// re-exports (`import x from "./map.js"`, `export {y} from "./z.js"`).
// The dashboard's modules use only this form; dynamic import() is not used.
var importRe = regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^;]*?\sfrom\s*"(\./[A-Za-z0-9_-]+\.js)"`)

// assetSet is every asset by hashed name, and the hashed name of every
// source name.
type assetSet struct {
	byHashed map[string]*asset
	hashed   map[string]string // "app.js" -> "app.3f2a1b9c04.js"
}

// loadAssets reads every file of fsys except index.html, rewrites the
// relative imports of JS modules to the imported files' hashed names, and
// names each file by the hash of its (rewritten) content. A module's hash
// therefore covers the modules it imports: a change anywhere changes the
// URL of every module that depends on it, so an immutable cache entry can
// never combine old and new code.
func loadAssets(fsys fs.FS) (*assetSet, error) {
	src := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." {
				return fmt.Errorf("dashboard assets: subdirectory %s not supported", p)
			}
			return nil
		}
		if p == "index.html" || strings.HasPrefix(path.Base(p), ".") {
			return nil
		}
		if _, ok := contentTypes[path.Ext(p)]; !ok {
			return fmt.Errorf("dashboard assets: %s: unknown file type", p)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		src[p] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	set := &assetSet{byHashed: map[string]*asset{}, hashed: map[string]string{}}
	visiting := map[string]bool{}
	var build func(name string) (string, error)
	build = func(name string) (string, error) {
		if h, ok := set.hashed[name]; ok {
			return h, nil
		}
		body, ok := src[name]
		if !ok {
			return "", fmt.Errorf("dashboard assets: %s not found", name)
		}
		if visiting[name] {
			return "", fmt.Errorf("dashboard assets: import cycle through %s", name)
		}
		visiting[name] = true
		defer delete(visiting, name)
		if path.Ext(name) == ".js" {
			var err error
			body, err = rewriteImports(body, func(dep string) (string, error) { return build(dep) })
			if err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])[:hashLen]
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + h + ext
		a := &asset{name: hashed, contentType: contentTypes[ext], body: body, etag: `"` + h + `"`}
		a.gz = compress(body)
		set.hashed[name] = hashed
		set.byHashed[hashed] = a
		return hashed, nil
	}
	names := make([]string, 0, len(src))
	for n := range src {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := build(n); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// rewriteImports replaces each relative import specifier "./x.js" of a
// module with "./" + resolve("x.js").
func rewriteImports(body []byte, resolve func(string) (string, error)) ([]byte, error) {
	var out bytes.Buffer
	last := 0
	for _, m := range importRe.FindAllSubmatchIndex(body, -1) {
		spec := string(body[m[2]:m[3]])
		h, err := resolve(strings.TrimPrefix(spec, "./"))
		if err != nil {
			return nil, err
		}
		out.Write(body[last:m[2]])
		out.WriteString("./" + h)
		last = m[3]
	}
	out.Write(body[last:])
	return out.Bytes(), nil
}

// compress returns the gzip form of b when it saves at least a tenth.
func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	if buf.Len() > len(b)*9/10 {
		return nil
	}
	return buf.Bytes()
}
