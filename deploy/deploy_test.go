// Package deploy holds the systemd unit; its test also checks the
// repository's Dockerfile, because no container engine runs in CI
// (docs/deployment.md, "Container").
package deploy

import (
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/peba-go/peba/config"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, as Docker and systemd do.
	return strings.ReplaceAll(string(b), "\\\n", " ")
}

// instructions returns the Dockerfile's instructions as upper-case keyword
// plus arguments, comments dropped.
func instructions(df string) [][2]string {
	var out [][2]string
	for _, line := range strings.Split(df, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kw, args, _ := strings.Cut(line, " ")
		out = append(out, [2]string{strings.ToUpper(kw), strings.TrimSpace(args)})
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := instructions(read(t, "../Dockerfile"))
	var froms []string
	final := map[string][]string{} // instructions of the last stage
	for _, in := range ins {
		if in[0] == "FROM" {
			froms = append(froms, in[1])
			final = map[string][]string{}
		}
		final[in[0]] = append(final[in[0]], in[1])
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:1.26-bookworm AS ") || froms[1] != "debian:bookworm-slim" {
		t.Errorf("stages %q: want a golang:1.26-bookworm builder and a debian:bookworm-slim runtime", froms)
	}
	want := map[string]*regexp.Regexp{
		"USER":        regexp.MustCompile(`^peba$`),
		"VOLUME":      regexp.MustCompile(`^/var/lib/peba$`),
		"EXPOSE":      regexp.MustCompile(`^9922$`),
		"HEALTHCHECK": regexp.MustCompile(`CMD \[.*"health", "http://127\.0\.0\.1:9922/healthz"\]$`),
		"ENTRYPOINT":  regexp.MustCompile(`^\["/usr/local/bin/peba"\]$`),
		"COPY":        regexp.MustCompile(`^--from=build /out/peba /usr/local/bin/peba$`),
	}
	for kw, re := range want {
		if len(final[kw]) != 1 || !re.MatchString(final[kw][0]) {
			t.Errorf("runtime stage %s = %q, want one matching %s", kw, final[kw], re)
		}
	}
	all := read(t, "../Dockerfile")
	for _, s := range []string{"CGO_ENABLED=1", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "-X main.buildDate=${BUILD_DATE}", "useradd --system"} {
		if !strings.Contains(all, s) {
			t.Errorf("Dockerfile lacks %q", s)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := read(t, "peba.service")
	set := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			set[k] = append(set[k], v)
		}
	}
	for k, v := range map[string]string{
		"ExecStart": "/usr/local/bin/peba serve", "DynamicUser": "yes", "StateDirectory": "peba",
		"ProtectSystem": "strict", "ReadWritePaths": "/var/lib/peba", "NoNewPrivileges": "yes",
		"PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "",
	} {
		if len(set[k]) == 0 || set[k][0] != v {
			t.Errorf("%s = %q, want %q", k, set[k], v)
		}
	}

	// The default WRITERNICE works under the unit: setpriority is allowed
	// again after the @resources group that holds it is denied (systemd
	// applies the filter lines in order), and LimitNICE allows the value.
	cfg, _, err := config.Load("peba", nil, func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	filters := set["SystemCallFilter"]
	if i := slices.Index(filters, "setpriority"); i < 0 || !slices.ContainsFunc(filters[:i], func(f string) bool { return strings.Contains(f, "~") && strings.Contains(f, "@resources") }) {
		t.Errorf("SystemCallFilter = %q: want setpriority allowed after ~@resources", filters)
	}
	if lim := set["LimitNICE"]; len(lim) != 1 || lim[0] != strconv.Itoa(cfg.WriterNice) {
		t.Errorf("LimitNICE = %q, want the default WRITERNICE %d", lim, cfg.WriterNice)
	}
	if v := set["SystemCallErrorNumber"]; len(v) != 1 || v[0] != "EPERM" {
		t.Errorf("SystemCallErrorNumber = %q, want EPERM (a filtered call must fail, not kill the service)", v)
	}
}
